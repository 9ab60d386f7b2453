"""Batched token-by-token generation on one model, on its own thread.

Requests that arrive while the engine is idle or busy are queued; the engine takes up to
``max_batch`` of them, left-pads their prompts into one batch and decodes them together with one
KV cache, each row with its own settings (temperature, top_p, seed, max_tokens, stop strings).
A row leaves the batch (its tokens are ignored) when it hits a stop token, a stop string, its
``max_tokens`` or is cancelled; the batch ends when no row is left.

Exactness: a row decodes what ``model.generate`` decodes for the same prompt alone —
greedy (``temperature == 0``) takes the arg-max; sampling applies temperature, then top-p exactly
as transformers' ``TopPLogitsWarper`` does, and draws with ``torch.multinomial`` from a
generator seeded with ``seed``, as ``torch.manual_seed(seed); model.generate(do_sample=True,
top_k=0, ...)`` does. Position ids come from the attention mask, so left padding does not shift a
row. Text is streamed as it becomes final: an incomplete UTF-8 character or a possible start of a
stop string is held back until the next token decides it.
"""

from __future__ import annotations

import queue
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..modeling.stops import stop_token_ids

FINISH_STOP = "stop"
FINISH_LENGTH = "length"


@dataclass(frozen=True)
class Sampling:
    """How to generate one answer (OpenAI semantics: temperature 0 = greedy)."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Request:
    """One queued generation: ``sink(delta_text, finish_reason_or_None)`` receives the stream."""

    ids: list[int]
    sampling: Sampling
    sink: Callable[[str, str | None], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of the decoded text already sent

    def cancel(self) -> None:
        self.cancelled.set()


def filter_top_p(scores, top_p: float):
    """Mask (to -inf) the tokens outside the top-p nucleus, exactly as transformers' TopPLogitsWarper."""
    import torch

    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -1:] = False
    remove = remove.scatter(1, sorted_indices, remove)
    return scores.masked_fill(remove, float("-inf"))


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` could still become a stop string (or a split character)."""
    if text.endswith("\ufffd"):
        return len(text) - len(text.rstrip("\ufffd"))
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                hold = max(hold, n)
                break
    return hold


def _cache_argument(model) -> str:
    """The forward() keyword of the KV cache: ``cache`` (transformers 5.x) or ``past_key_values`` (older)."""
    import inspect

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(target.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


class Engine:
    """Generation for one model: :meth:`submit` queues a request; a worker thread batches them."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 8, stop_ids: list[int] | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max(1, int(max_batch))
        self.stop_ids = set(stop_ids if stop_ids is not None else stop_token_ids(model, tokenizer))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches: list[int] = []  # size of each batch decoded (for tests and statistics)

    # ------------------------------------------------------------------ public
    def submit(self, ids: list[int], sampling: Sampling, sink: Callable[[str, str | None], None]) -> Request:
        """Queue ``ids`` for generation; ``sink`` gets text deltas and finally ``("", finish_reason)``."""
        req = Request(list(ids), sampling, sink)
        self._ensure_thread()
        self._queue.put(req)
        return req

    def generate(self, ids: list[int], sampling: Sampling) -> tuple[str, str, int]:
        """Blocking: ``(text, finish_reason, completion_tokens)`` for one prompt."""
        parts: list[str] = []
        done = threading.Event()
        result: dict = {}

        def sink(delta: str, finish: str | None) -> None:
            parts.append(delta)
            if finish is not None:
                result["finish"] = finish
                done.set()

        req = self.submit(ids, sampling, sink)
        done.wait()
        if result["finish"] == "error":
            raise RuntimeError("".join(parts))
        return "".join(parts), result["finish"], len(req.tokens)

    def close(self) -> None:
        """Stop the worker thread after the current batch."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    # ------------------------------------------------------------------ worker
    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="sftkit-engine", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            batch = [r for r in batch if not r.cancelled.is_set()]
            if not batch:
                continue
            self.batches.append(len(batch))
            try:
                self._decode(batch)
            except Exception as exc:  # a failed batch fails its requests, not the server
                for r in batch:
                    r.sink(f"{type(exc).__name__}: {exc}", "error")

    def _device(self):
        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):  # pragma: no cover
            import torch

            return torch.device("cpu")

    def _decode(self, batch: list[Request]) -> None:
        import torch

        device = self._device()
        n = len(batch)
        width = max(len(r.ids) for r in batch)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for row, r in enumerate(batch):
            ids[row, width - len(r.ids):] = torch.tensor(r.ids, dtype=torch.long)
            mask[row, width - len(r.ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = []
        for r in batch:
            g = None
            if not r.sampling.greedy:
                g = torch.Generator()
                g.manual_seed(r.sampling.seed if r.sampling.seed is not None else secrets.randbits(63))
            gens.append(g)
        alive = [True] * n
        ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
        cache = None
        steps = max(r.sampling.max_tokens for r in batch)
        model = self.model
        model.eval()
        cache_arg = _cache_argument(model)
        with torch.no_grad():
            for _ in range(steps):
                out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            use_cache=True, **{cache_arg: cache})
                cache = getattr(out, cache_arg, None)
                logits = out.logits[:, -1, :].float()
                chosen = torch.argmax(logits, dim=-1).tolist()  # greedy rows: one arg-max for all
                for row, r in enumerate(batch):
                    if not alive[row]:
                        chosen[row] = self.pad_id
                    elif not r.sampling.greedy:
                        chosen[row] = self._sample(logits[row:row + 1], r.sampling, gens[row])
                for row, r in enumerate(batch):
                    if alive[row]:
                        alive[row] = self._advance(r, chosen[row])
                if not any(alive):
                    break
                ids = torch.tensor(chosen, dtype=torch.long, device=device).unsqueeze(-1)
                mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=-1)
                positions = positions[:, -1:] + 1
        for row, r in enumerate(batch):
            if alive[row]:  # pragma: no cover - every row ends by max_tokens at the latest
                self._finish(r, FINISH_LENGTH)

    @staticmethod
    def _sample(logits, sampling: Sampling, generator) -> int:
        import torch

        scores = logits / sampling.temperature if sampling.temperature != 1.0 else logits
        if sampling.top_p < 1.0:
            scores = filter_top_p(scores, sampling.top_p)
        probs = torch.softmax(scores, dim=-1).cpu()
        return int(torch.multinomial(probs, num_samples=1, generator=generator)[0, 0])

    def _advance(self, r: Request, token: int) -> bool:
        """Record ``token`` for ``r``, stream what became final; False when ``r`` is done."""
        if r.cancelled.is_set():
            self._finish(r, FINISH_STOP, flush=False)
            return False
        if token in self.stop_ids:
            self._finish(r, FINISH_STOP)
            return False
        r.tokens.append(token)
        text = self.tokenizer.decode(r.tokens, skip_special_tokens=True)
        for s in r.sampling.stop:
            at = text.find(s)
            if at >= 0:
                self._emit(r, text[:at])
                r.sink("", FINISH_STOP)
                return False
        if len(r.tokens) >= r.sampling.max_tokens:
            self._emit(r, text)
            r.sink("", FINISH_LENGTH)
            return False
        self._emit(r, text[:len(text) - _held_back(text[r.emitted:], r.sampling.stop)])
        return True

    def _emit(self, r: Request, final_text: str) -> None:
        if len(final_text) > r.emitted:
            r.sink(final_text[r.emitted:], None)
            r.emitted = len(final_text)

    def _finish(self, r: Request, reason: str, flush: bool = True) -> None:
        if flush and r.tokens:
            self._emit(r, self.tokenizer.decode(r.tokens, skip_special_tokens=True))
        r.sink("", reason)
