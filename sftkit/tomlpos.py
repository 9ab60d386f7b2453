"""Where each key of a TOML document sits (line, column), which ``tomllib`` does not report.

A small line scanner that understands table headers (``[a.b]``, ``[[data]]``), dotted keys, quoted
keys, inline tables, and values spanning lines (multi-line strings and arrays). Keys inside arrays
of inline tables map to the array's key. Good enough to point at a problem; never used to parse values.
"""

from __future__ import annotations

import re

Path = tuple  # ("data", 0, "path")

_BARE = r"[A-Za-z0-9_-]+"
_KEY = rf'(?:{_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER_RE = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_KEYVAL_RE = re.compile(rf"^(\s*)({_DOTTED})\s*=")
_KEYPART_RE = re.compile(_KEY)


def _split_key(dotted: str) -> list[str]:
    parts = []
    for m in _KEYPART_RE.finditer(dotted):
        tok = m.group(0)
        if tok[:1] in "\"'":
            tok = tok[1:-1]
        parts.append(tok)
    return parts


def _scan_value(text: str, start: int, state: dict) -> None:
    """Advance bracket depth / multi-line string state over ``text[start:]`` (one physical line)."""
    i = start
    n = len(text)
    while i < n:
        if state["mstr"]:
            end = text.find(state["mstr"], i)
            if end < 0:
                return
            i = end + 3
            state["mstr"] = None
            continue
        c = text[i]
        if c == "#":
            return
        if text.startswith('"""', i) or text.startswith("'''", i):
            state["mstr"] = text[i:i + 3]
            i += 3
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == "'":
            end = text.find("'", i + 1)
            i = n if end < 0 else end + 1
            continue
        if c in "[{":
            state["depth"] += 1
        elif c in "]}":
            state["depth"] = max(0, state["depth"] - 1)
        i += 1


def _inline_keys(text: str, start: int, prefix: tuple, lineno: int, out: dict) -> None:
    """Record keys of a one-line inline table value: ``x = {a = 1, b = {c = 2}}``."""
    stack = [prefix]
    key_re = re.compile(rf"\s*({_DOTTED})\s*=")
    i = start
    expect_key = False
    while i < len(text):
        c = text[i]
        if c == "{":
            expect_key = True
            i += 1
            continue
        if expect_key:
            m = key_re.match(text, i)
            if m:
                path = stack[-1] + tuple(_split_key(m.group(1)))
                out.setdefault(path, (lineno, m.start(1) + 1))
                i = m.end()
                # a nested inline table opens a new level
                rest = text[i:].lstrip()
                if rest.startswith("{"):
                    stack.append(path)
                expect_key = False
                continue
            expect_key = False
        if c == ",":
            expect_key = True
        elif c == "}":
            if len(stack) > 1:
                stack.pop()
        elif c in "\"'":
            end = text.find(c, i + 1)
            i = len(text) if end < 0 else end
        i += 1


def key_positions(text: str) -> dict[Path, tuple[int, int]]:
    """Map key paths to (line, column), both 1-based. Array-of-table entries get an index."""
    out: dict[Path, tuple[int, int]] = {}
    counters: dict[tuple, int] = {}
    table: tuple = ()
    state = {"depth": 0, "mstr": None}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if state["mstr"] or state["depth"] > 0:
            _scan_value(line, 0, state)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _HEADER_RE.match(line)
        if m:
            parts = _split_key(m.group(2))
            col = m.start(2) + 1
            if m.group(1) == "[[":
                # the array is nested under the closest enclosing array entry of the same prefix
                base = _with_indices(parts[:-1], counters)
                key = base + (parts[-1],)
                idx = counters.get(key, -1) + 1
                counters[key] = idx
                table = key + (idx,)
                out.setdefault(key, (lineno, col))
            else:
                table = _with_indices(parts, counters)
            out.setdefault(table, (lineno, col))
            continue
        m = _KEYVAL_RE.match(line)
        if m:
            path = table + tuple(_split_key(m.group(2)))
            out.setdefault(path, (lineno, m.start(2) + 1))
            _inline_keys(line, m.end(), path, lineno, out)
            _scan_value(line, m.end(), state)
    return out


def _with_indices(parts: list[str], counters: dict) -> tuple:
    """Insert the current index after any prefix that is an array of tables."""
    path: tuple = ()
    for p in parts:
        path = path + (p,)
        if path in counters:
            path = path + (counters[path],)
    return path


def find_position(positions: dict, path: tuple) -> tuple[int, int] | None:
    """Position of ``path`` or of its closest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return None
