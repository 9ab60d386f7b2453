"""The arena web page: blind battles, votes, reveal, ratings (Starlette, no JavaScript).

Flow: ``GET /`` draws a battle for the voter (a listed prompt whose answers were generated ahead,
two models in random order; the same one again until they vote on it, so reloading neither picks
battles nor fills the database; a first visit only sets the voter cookie) and redirects to
``/battle/ID``; the voter picks A, B, tie or both
bad, optionally writes a better answer, and ``POST /battle/ID/vote`` stores it; the battle page
then reveals which model wrote which answer. ``POST /ask`` makes a battle from a typed prompt
(generated on demand, both models batched on their engines). ``GET /ratings`` shows win rates and
Bradley–Terry scores with intervals, overall and per prompt set.

Safety: every text is HTML-escaped and the Content-Security-Policy allows no script at all, so a
model's ``<script>`` is shown, never run; votes and typed prompts carry a CSRF token (an HMAC of
the voter's cookie with a per-process secret; cookies are SameSite=Strict, HttpOnly); the
database refuses a second vote of a voter on a battle; bodies, prompts and written answers are
bounded; only these routes exist (no file is served from disk). With an access key (needed off
loopback), ``/?key=KEY`` once sets a cookie that every request must carry.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import random
import re
import secrets
import threading
from hashlib import sha256
from urllib.parse import parse_qs

from .store import CHOICES, AlreadyVoted, Store

MAX_FORM = 64 * 1024  # bytes of a form post
MAX_PROMPT = 4000  # characters of a typed prompt
MAX_BETTER = 8000  # characters of a written better answer
VOTER_COOKIE = "sftkit_voter"
ACCESS_COOKIE = "sftkit_access"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
_ID = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
CHOICE_TEXT = {"a": "A is better", "b": "B is better", "tie": "Tie (both good)", "bad": "Both are bad"}

e = html.escape


class Arena:
    """Models (name → ServedModel), prompts ``[(prompt_set, prompt)]``, settings and the store."""

    def __init__(self, store: Store, models: dict, prompts: list[tuple[str, str]], settings: dict, *,
                 access_key: str | None = None, seed: int | None = None):
        if len(models) < 2:
            raise ValueError("an arena needs at least two models")
        self.store = store
        self.models = models
        self.prompts = prompts
        self.prompt_sets = {p: s for s, p in reversed(prompts)}  # a prompt listed twice: its first set
        self.settings = dict(settings)
        self.access_key = access_key
        self.secret = secrets.token_bytes(32)
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.generated = threading.Event()

    # ------------------------------------------------------------------ generation
    def _sampling(self):
        from ..serving.engine import Sampling

        s = self.settings
        return Sampling(max_tokens=int(s.get("max_tokens", 256)), temperature=float(s.get("temperature", 0.7)),
                        top_p=float(s.get("top_p", 0.9)), seed=s.get("seed"))

    def _generate(self, jobs: list[tuple[str, str]]) -> dict:
        """Answers of ``[(model, prompt)]``, all submitted at once (each engine batches its share)."""
        results: dict = {}
        done = threading.Semaphore(0)
        for model, prompt in jobs:
            served = self.models[model]
            parts: list[str] = []

            def sink(delta, finish, parts=parts, key=(model, prompt)):
                parts.append(delta)
                if finish is not None:
                    results[key] = "".join(parts) if finish != "error" else None
                    done.release()

            served.engine.submit(served.encode(served.render([{"role": "user", "content": prompt}])),
                                 self._sampling(), sink)
        for _ in jobs:
            done.acquire()
        return results

    def generate_ahead(self) -> None:
        """Answer every listed prompt with every model (skipping answers already stored)."""
        jobs = [(m, p) for _, p in self.prompts for m in self.models if self.store.answer(p, m, self.settings) is None]
        for chunk in range(0, len(jobs), 64):
            part = jobs[chunk:chunk + 64]
            for (model, prompt), answer in self._generate(part).items():
                if answer is not None:
                    self.store.add_answer(self.prompt_sets[prompt], prompt, model, answer, self.settings)
        self.generated.set()

    # ------------------------------------------------------------------ battles
    def _pair(self) -> tuple[str, str]:
        with self.rng_lock:
            return tuple(self.rng.sample(sorted(self.models), 2))  # type: ignore[return-value]

    def new_battle(self, voter: str = ""):
        """The voter's open battle, else a new one on a listed prompt whose answers are ready (None: none yet)."""
        if voter:
            current = self.store.open_battle(voter)
            if current is not None:
                return current
        ready = self.store.ready_prompts(list(self.models), self.settings)
        if not ready:
            return None
        with self.rng_lock:
            prompt_set, prompt = self.rng.choice(ready)
        prompt_set = self.prompt_sets.get(prompt, prompt_set)  # the set this arena lists it in
        answers = {m: self.store.answer(prompt, m, self.settings) for m in self.models}
        names = [m for m, a in answers.items() if a is not None]
        with self.rng_lock:
            a, b = self.rng.sample(sorted(names), 2)
        return self.store.add_battle(prompt_set, prompt, a, b, answers[a], answers[b], self.settings, voter)

    def typed_battle(self, prompt: str, voter: str = ""):
        """A battle on a typed prompt: both answers generated now."""
        a, b = self._pair()
        got = self._generate([(a, prompt), (b, prompt)])
        if got.get((a, prompt)) is None or got.get((b, prompt)) is None:
            raise RuntimeError("generation failed")
        for m in (a, b):
            self.store.add_answer("typed", prompt, m, got[(m, prompt)], self.settings)
        return self.store.add_battle("typed", prompt, a, b, got[(a, prompt)], got[(b, prompt)], self.settings, voter)

    def csrf(self, voter: str) -> str:
        return hmac.new(self.secret, voter.encode(), sha256).hexdigest()

    # ------------------------------------------------------------------ app
    def app(self):
        """The Starlette application."""
        from starlette.applications import Starlette
        from starlette.routing import Route

        routes = [Route("/", self.home, methods=["GET"]),
                  Route("/battle/{bid}", self.show, methods=["GET"]),
                  Route("/battle/{bid}/vote", self.vote, methods=["POST"]),
                  Route("/ask", self.ask, methods=["POST"]),
                  Route("/ratings", self.ratings_page, methods=["GET"])]

        async def not_found(request, exc):
            return _page("Not found", "<p>There is no such page in this arena.</p>", status=getattr(exc, "status_code", 404))

        return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})

    # ------------------------------------------------------------------ request helpers
    def _gate(self, request):
        """(voter id, new voter?) or a response refusing the request (access key)."""
        from starlette.responses import RedirectResponse

        if self.access_key is not None:
            given = request.query_params.get("key") or request.cookies.get(ACCESS_COOKIE) or ""
            if not hmac.compare_digest(given.encode(), self.access_key.encode()):
                return None, _page("Access key needed", "<p>Open the link with <code>?key=…</code> you were given.</p>",
                                   status=403)
            if request.query_params.get("key"):
                resp = RedirectResponse("/", status_code=303)
                resp.set_cookie(ACCESS_COOKIE, self.access_key, httponly=True, samesite="strict")
                return None, resp
        voter = request.cookies.get(VOTER_COOKIE, "")
        return (voter if _ID.match(voter) else None), None

    @staticmethod
    def _with_voter(resp, voter: str, new: bool):
        if new:
            resp.set_cookie(VOTER_COOKIE, voter, max_age=365 * 24 * 3600, httponly=True, samesite="strict")
        return resp

    @staticmethod
    async def _form(request) -> dict | None:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_FORM:
                return None
            chunks.append(chunk)
        try:
            parsed = parse_qs(b"".join(chunks).decode("utf-8"), keep_blank_values=True, max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            return None
        return {k: v[0] for k, v in parsed.items()}

    # ------------------------------------------------------------------ routes
    async def home(self, request):
        from starlette.responses import RedirectResponse

        voter, refused = self._gate(request)
        if refused is not None:
            return refused
        if voter is None:  # first visit: a voter cookie first, so battles are only drawn for real voters
            return self._with_voter(RedirectResponse("/", status_code=303), secrets.token_urlsafe(16), True)
        new = False
        battle = await asyncio.to_thread(self.new_battle, voter)
        if battle is None:
            waiting = "" if self.generated.is_set() else \
                "<p>The answers to the listed prompts are still being generated: reload in a moment.</p>"
            listed = "" if self.prompts else "<p>No prompts are listed: type one.</p>"
            return self._with_voter(_page("Arena", waiting + listed + self._ask_form(voter)), voter, new)
        return self._with_voter(RedirectResponse(f"/battle/{battle.id}", status_code=303), voter, new)

    async def show(self, request):
        voter, refused = self._gate(request)
        if refused is not None:
            return refused
        bid = request.path_params["bid"]
        battle = self.store.battle(bid) if _ID.match(bid) else None
        if battle is None:
            return _page("Not found", "<p>There is no such battle.</p>", status=404)
        new = voter is None
        voter = voter or secrets.token_urlsafe(16)
        choice = None if new else self.store.vote_of(battle.id, voter)
        return self._with_voter(_page("Arena", self._battle_html(battle, voter, choice)), voter, new)

    async def vote(self, request):
        from starlette.responses import RedirectResponse

        voter, refused = self._gate(request)
        if refused is not None:
            return refused
        bid = request.path_params["bid"]
        form = await self._form(request)
        if voter is None or form is None or not hmac.compare_digest(form.get("csrf", ""), self.csrf(voter)):
            return _page("Vote refused", "<p>This vote did not come from the arena page (missing or wrong form "
                                         "token). <a href=\"/\">Reload</a> and vote again.</p>", status=403)
        choice = form.get("choice", "")
        better = (form.get("better") or "").strip()
        if choice not in CHOICES:
            return _page("Vote refused", "<p>Pick A, B, tie or both bad.</p>", status=400)
        if len(better) > MAX_BETTER:
            return _page("Vote refused", f"<p>The better answer is over {MAX_BETTER} characters.</p>", status=413)
        battle = self.store.battle(bid) if _ID.match(bid) else None
        if battle is None:
            return _page("Not found", "<p>There is no such battle.</p>", status=404)
        try:
            await asyncio.to_thread(self.store.add_vote, battle.id, voter, choice, better or None)
        except AlreadyVoted:
            return _page("Already voted", f"<p>You already voted on this battle. <a href=\"/battle/{e(bid)}\">"
                                          "See the result</a> or <a href=\"/\">take the next one</a>.</p>", status=409)
        return RedirectResponse(f"/battle/{battle.id}", status_code=303)

    async def ask(self, request):
        from starlette.responses import RedirectResponse

        voter, refused = self._gate(request)
        if refused is not None:
            return refused
        form = await self._form(request)
        if voter is None or form is None or not hmac.compare_digest(form.get("csrf", ""), self.csrf(voter)):
            return _page("Refused", "<p>Missing or wrong form token. <a href=\"/\">Reload</a>.</p>", status=403)
        prompt = (form.get("prompt") or "").strip()
        if not prompt or len(prompt) > MAX_PROMPT:
            return _page("Refused", f"<p>Type a prompt of 1 to {MAX_PROMPT} characters.</p>", status=400)
        battle = await asyncio.to_thread(self.typed_battle, prompt, voter)
        return RedirectResponse(f"/battle/{battle.id}", status_code=303)

    async def ratings_page(self, request):
        from .ratings import ratings_by_set

        voter, refused = self._gate(request)
        if refused is not None:
            return refused
        tables = await asyncio.to_thread(lambda: ratings_by_set(self.store.votes()))
        parts = ["<h1>Ratings</h1>"]
        if not tables["all"]:
            parts.append("<p>No votes yet.</p>")
        for name, rows in tables.items():
            if not rows:
                continue
            title = "All prompts" if name == "all" else f"Prompt set: {e(name)}"
            n = sum(r["votes"] for r in rows) // 2
            parts.append(f"<h2>{title} <small>({n} votes)</small></h2>")
            parts.append("<table class=ratings><tr><th>model</th><th>Bradley–Terry (Elo scale)</th>"
                         "<th>95% interval</th><th>votes</th><th>wins / losses / ties</th><th>win rate</th></tr>")
            for r in rows:
                interval = f"{r['low']:.0f} – {r['high']:.0f}" if r["low"] is not None else "—"
                rate = f"{100 * r['win_rate']:.0f}%" if r["win_rate"] is not None else "—"
                parts.append(f"<tr><td>{e(r['model'])}</td><td>{r['score']:.0f}</td><td>{interval}</td>"
                             f"<td>{r['votes']}</td><td>{r['wins']} / {r['losses']} / {r['ties']}</td>"
                             f"<td>{rate}</td></tr>")
            parts.append("</table>")
        parts.append("<p class=note>Ties and “both bad” count half a win each; intervals are 2.5–97.5th "
                     "percentiles of 200 bootstrap resamples of the votes.</p>")
        parts.append('<p><a href="/">Next battle</a></p>')
        return _page("Ratings", "".join(parts))

    # ------------------------------------------------------------------ html
    def _ask_form(self, voter: str) -> str:
        return (f'<form class=ask method=post action="/ask"><input type=hidden name=csrf value="{self.csrf(voter)}">'
                f'<label for=prompt>Or type your own prompt</label><textarea id=prompt name=prompt rows=2 '
                f'maxlength={MAX_PROMPT} required></textarea><button type=submit>Ask both models</button></form>')

    def _battle_html(self, b, voter: str, choice: str | None) -> str:
        def answer(label: str, text: str, model: str) -> str:
            reveal = f'<div class=model>{label} was <b id=model-{label.lower()}>{e(model)}</b></div>' if choice else ""
            return (f'<section class=answer id=answer-{label.lower()}><h2>Model {label}</h2>'
                    f'<div class=text>{e(text)}</div>{reveal}</section>')

        head = (f'<div class=prompt><span class=set>{e(b.prompt_set)}</span><div class=text id=prompt>{e(b.prompt)}</div></div>'
                f'<div class=pair>{answer("A", b.answer_a, b.model_a)}{answer("B", b.answer_b, b.model_b)}</div>')
        if choice:
            done = (f'<p class=voted id=voted>You voted: {e(CHOICE_TEXT[choice])}.</p>'
                    '<p><a id=next href="/">Next battle</a> · <a id=ratings href="/ratings">Ratings</a></p>')
            return head + done
        buttons = "".join(f'<button type=submit name=choice value="{c}" id=vote-{c}>{e(t)}</button>'
                          for c, t in CHOICE_TEXT.items())
        form = (f'<form class=vote method=post action="/battle/{e(b.id)}/vote">'
                f'<input type=hidden name=csrf value="{self.csrf(voter)}">'
                f'<details><summary>Write a better answer (optional)</summary>'
                f'<textarea name=better rows=3 maxlength={MAX_BETTER}></textarea></details>'
                f'<div class=buttons>{buttons}</div></form>')
        return head + form + self._ask_form(voter) + '<p><a href="/ratings">Ratings</a></p>'


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:1.5rem auto;padding:0 1rem;color:#222}
header{display:flex;gap:1rem;align-items:baseline}header a{color:#555}
.prompt{background:#f3f4f6;border-radius:8px;padding:.8rem 1rem;margin:1rem 0}
.set{font-size:12px;color:#666;text-transform:uppercase;letter-spacing:.05em}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.answer{border:1px solid #ddd;border-radius:8px;padding:.6rem 1rem}.answer h2{font-size:15px;margin:.2rem 0 .5rem}
.model{margin-top:.6rem;padding-top:.4rem;border-top:1px dashed #ccc;color:#444}
.buttons{display:flex;gap:.5rem;margin:.8rem 0}button{font:inherit;padding:.45rem .9rem;border-radius:6px;
border:1px solid #888;background:#fff;cursor:pointer}button:hover{background:#eef}
textarea{width:100%;box-sizing:border-box;font:inherit}.ask{margin-top:1.5rem}.ask label{display:block;color:#555}
table.ratings{border-collapse:collapse}table.ratings td,table.ratings th{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left}
.note{color:#666;font-size:13px}.voted{font-weight:600}
"""


def _page(title: str, body: str, status: int = 200):
    from starlette.responses import HTMLResponse

    doc = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)} · sftkit arena</title>"
           f"<meta name=viewport content=\"width=device-width, initial-scale=1\"><style>{_STYLE}</style></head>"
           f"<body><header><strong>sftkit arena</strong><a href=\"/\">battle</a><a href=\"/ratings\">ratings</a>"
           f"</header>{body}</body></html>")
    return HTMLResponse(doc, status_code=status, headers={
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store", "X-Frame-Options": "DENY"})
