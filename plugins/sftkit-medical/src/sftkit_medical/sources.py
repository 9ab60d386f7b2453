"""Data sources: raw rows only (sftkit converts them to canonical records)."""

from __future__ import annotations

import re
from pathlib import Path

from sftkit.errors import DataError

from .mmlu import LETTERS, MEDICAL_TOPICS, format_question, load_items

BUNDLED = Path(__file__).resolve().parent / "data"
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def parse_sections(text: str, default_title: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a markdown-ish document into ``(title, [(section, body), ...])``.

    The first level-1 heading is the title; other headings start sections; text before any
    section heading is the section ``""``.
    """
    title, titled = default_title, False
    done: list[tuple[str, list[str]]] = []
    name, body = "", []
    for line in text.splitlines():
        m = _HEADING.match(line)
        if m is None:
            body.append(line)
            continue
        if len(m.group(1)) == 1 and not titled and not done and not any(b.strip() for b in body):
            title, titled = m.group(2), True
            continue
        done.append((name, body))
        name, body = m.group(2), []
    done.append((name, body))
    return title, [(n, "\n".join(b).strip()) for n, b in done if "\n".join(b).strip()]


def _files(root: Path) -> list[Path]:
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".md", ".txt") and p.is_file())
    if root.is_file():
        return [root]
    raise DataError(f"medical_text: {root} does not exist", hint="set path to a .md/.txt file or a directory")


# [docs:source]
def medical_text(options: dict, ctx) -> list[dict]:
    """Rows ``{"text"}``: one per kept section (or per document), prefixed with title and section."""
    root = ctx.resolve(options["path"]) if options.get("path") else BUNDLED
    keep = {s.lower() for s in options.get("sections") or []}
    drop = {s.lower() for s in options.get("exclude_sections", ["References"]) or []}
    by = options.get("by", "section")
    min_chars = int(options.get("min_chars", 40))
    rows = []
    for path in _files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"medical_text: cannot read {path}: {exc}", hint="files must be UTF-8 text")
        title, sections = parse_sections(text, path.stem.replace("-", " "))
        kept = [(name, body) for name, body in sections
                if (not keep or name.lower() in keep) and name.lower() not in drop]
        if by == "document":
            parts = [f"{name}\n{body}" if name else body for name, body in kept]
            chunks = [f"{title}\n\n" + "\n\n".join(parts)] if parts else []
        else:
            chunks = [f"{title} — {name}\n\n{body}" if name else f"{title}\n\n{body}" for name, body in kept]
        rows += [{"text": c} for c in chunks if len(c) >= min_chars]
    if not rows:
        raise DataError(f"medical_text: no text left in {root} after section filtering",
                        hint="check sections / exclude_sections / min_chars")
    return rows
# [/docs:source]


def mmlu_medical(options: dict, ctx) -> list[dict]:
    """MMLU medical questions as Q/A text (or prompt/completion); held-out eval questions excluded."""
    path = ctx.resolve(options.get("path", "package://sftkit_medical/mmlu_data/medical.jsonl.gz"))
    items = load_items(path, options.get("topics") or MEDICAL_TOPICS, options.get("questions", "train"))
    style = options.get("style", "text")
    rows = []
    for item in items:
        letter = LETTERS[item["answer"]]
        answer = f"{letter}. {item['choices'][item['answer']]}"
        if style == "prompt_completion":
            rows.append({"prompt": format_question(item), "completion": " " + answer})
        else:
            rows.append({"text": f"{format_question(item)} {answer}"})
    return rows
