"""The feedback loop in a run's report: arena ratings before and after a run that trained on votes.

A run whose ``[[data]]`` reads ``source = "arena"`` trains on the votes cast so far. When it starts,
:func:`record_databases` (``sftkit_run_start``, registered in ``sftkit.builtin.arena``) records in
``metrics.json`` (``plugins.arena``) each database the run reads, how many votes it held and the
time of the last one. :func:`report_sections` (rendered again by every ``sftkit report RUN``) reads
the database then and shows Bradley–Terry ratings with intervals for three sets of votes:
**before** (the votes the run trained on), **after** (cast since: the next ``sftkit arena`` round,
where this run meets the model it was tuned from) and **all** (every model on one scale). The run's
own row is marked: the arena names a run directory after its folder.
"""

from __future__ import annotations

from pathlib import Path

KEY = "arena"


def _arena_options(run) -> list[dict]:
    """The options of the run's ``[[data]]`` entries that read an arena database."""
    from ..config import of_run

    return [entry.options for entry in of_run(run).data if entry.source == "arena"]


def record_databases(run) -> None:
    """Record each arena database the run trains on: its path, vote count and last vote time."""
    from ..paths import resolve_path
    from .store import Store

    found = []
    for table in _arena_options(run):
        store = Store(resolve_path(table["path"], run.base_dir), create=False)
        votes = _filtered(store.votes(), table.get("prompt_set"))
        store.close()
        found.append({"path": str(store.path.resolve()), "prompt_set": table.get("prompt_set"),
                      "votes": len(votes), "until": max((v.created for v in votes), default=0.0)})
    if found:
        run.plugin_metrics[KEY] = {"databases": found}


def _filtered(votes: list, prompt_set: str | None) -> list:
    return [v for v in votes if prompt_set is None or v.battle.prompt_set == prompt_set]


def _rating_lines(rows: list[dict], this_run: str) -> str:
    lines = []
    for r in rows:
        interval = f" (95% interval {r['low']:.0f}–{r['high']:.0f})" if r["low"] is not None else ""
        rate = f", won {100 * r['win_rate']:.0f}%" if r["win_rate"] is not None else ""
        mark = " ← this run" if r["model"] == this_run else ""
        lines.append(f"- **{r['model']}**: {r['score']:.0f}{interval}; {r['votes']} votes "
                     f"({r['wins']} won, {r['losses']} lost, {r['ties']} tied or both bad){rate}{mark}")
    return "\n".join(lines)


def ratings_before_after(db: dict, this_run: str) -> str:
    """The Markdown of one database's section (see the module docstring)."""
    from ..errors import SftkitError
    from .ratings import ratings
    from .store import Store

    path = Path(db["path"])
    try:
        store = Store(path, create=False)
    except SftkitError as err:
        return f"This run trained on {db['votes']} votes from `{path}`, which cannot be read now: {err.message}."
    votes = _filtered(store.votes(), db.get("prompt_set"))
    store.close()
    before = [v for v in votes if v.created <= db["until"]]
    after = [v for v in votes if v.created > db["until"]]
    parts = [f"This run trained on the {db['votes']} votes in `{path}`"
             + (f" on prompt set `{db['prompt_set']}`" if db.get("prompt_set") else "")
             + ". Bradley–Terry scores on the Elo scale (1000 = the average model) with 95% bootstrap "
               f"intervals; the arena names this run `{this_run}`.",
             "", "**Before** (the votes this run trained on):", "",
             _rating_lines(ratings(before), this_run) or "- no votes between two different models"]
    if after:
        parts += ["", f"**After** ({len(after)} votes cast since):", "", _rating_lines(ratings(after), this_run),
                  "", "**All votes** (every model on one scale):", "", _rating_lines(ratings(votes), this_run)]
    else:
        parts += ["", "**After**: no votes since this run. Pit it against the model it was tuned from "
                      f"(`sftkit arena RECIPE`, or `sftkit arena --models PARENT RUN_DIR --dir {path.parent}`), "
                      "vote, then `sftkit report RUN_DIR` adds the ratings after."]
    return "\n".join(parts)


def report_sections(run, metrics: dict) -> list[tuple[str, str]]:
    """"Arena ratings: before and after" for a run that trained on arena votes (else nothing)."""
    info = (metrics.get("plugins") or {}).get(KEY) or {}
    this_run = Path(run.run_dir).resolve().name if getattr(run, "run_dir", None) else ""
    return [("Arena ratings: before and after", ratings_before_after(db, this_run))
            for db in info.get("databases") or []]
