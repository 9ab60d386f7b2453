"""``sftkit validate`` checks of the built-in sources: cross-field rules, no heavy imports."""

from __future__ import annotations

from ..errors import Problem


def hf_check(options: dict, ctx) -> list:
    """``hf`` needs exactly one of ``id`` (hub) and ``path`` (local directory)."""
    has_id, has_path = bool(options.get("id")), bool(options.get("path"))
    if has_id == has_path:
        what = "both id and path" if has_id else "neither id nor path"
        return [Problem(f"source hf has {what}", path="",
                        hint='give id = "owner/name" for a hub dataset, or path = "dir" for a local one')]
    return []


def file_check(options: dict, ctx) -> list:
    """Options that only make sense for some file types."""
    path = str(options.get("path", "")).lower()
    problems = []
    if options.get("field") and not path.endswith((".json", ".json.gz")):
        problems.append(Problem("field applies to .json files only", path="field"))
    if options.get("delimiter") and not path.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt")):
        problems.append(Problem("delimiter applies to .csv/.tsv files only", path="delimiter"))
    return problems
