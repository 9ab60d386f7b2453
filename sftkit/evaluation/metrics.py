"""Pure scoring functions (no model, no heavy import)."""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from typing import Any, Iterable, Sequence

NORMALIZERS = ("strip", "lower", "whitespace", "punctuation", "articles", "trailing_punctuation")
DEFAULT_NORMALIZE = ("strip", "lower", "whitespace", "trailing_punctuation")
TRAILING_PUNCTUATION = ".!?,;:。！？"


def clean_text(text: Any) -> str:
    """A printable str: bytes decoded as UTF-8 with replacement, lone surrogates replaced."""
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", errors="replace")
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")


def has_invalid_utf8(text: str) -> bool:
    """True when decoding replaced bytes (U+FFFD) — the model emitted an incomplete UTF-8 sequence."""
    return "\ufffd" in text


def normalize(text: str, steps: Iterable[str] = DEFAULT_NORMALIZE) -> str:
    """Apply normalisation steps in a fixed order: articles/punctuation before whitespace/strip."""
    steps = set(steps)
    out = clean_text(text)
    if "lower" in steps:
        out = out.lower()
    if "punctuation" in steps:
        out = out.translate(str.maketrans("", "", string.punctuation))
    if "articles" in steps:
        out = re.sub(r"\b(a|an|the)\b", " ", out, flags=re.IGNORECASE)
    if "whitespace" in steps:
        out = " ".join(out.split())
    if "strip" in steps:
        out = out.strip()
    if "trailing_punctuation" in steps:  # "Yes." == "Yes"
        out = out.rstrip().rstrip(TRAILING_PUNCTUATION).rstrip()
    return out


def _as_list(expected: Any) -> list[str]:
    if expected is None:
        return []
    if isinstance(expected, (list, tuple)):
        return [str(e) for e in expected]
    return [str(expected)]


def exact_match(output: str, expected: Any, steps: Iterable[str] = DEFAULT_NORMALIZE) -> bool:
    """Output equals (one of) the expected answers after normalisation."""
    steps = tuple(steps)
    got = normalize(output, steps)
    return any(got == normalize(e, steps) for e in _as_list(expected))


def contains(output: str, expected: Any, steps: Iterable[str] = DEFAULT_NORMALIZE, *, whole_words: bool = True) -> bool:
    """(One of) the expected answers occurs in the output after normalisation; with ``whole_words``
    (default) only as whole words ("No" is not in "They do not overlap"; "A" is not in "answer")."""
    steps = tuple(steps)
    got = normalize(output, steps)
    for e in _as_list(expected):
        want = normalize(e, steps)
        if not want:
            continue
        if not whole_words and want in got:
            return True
        if whole_words and re.search(r"(?<!\w)" + re.escape(want) + r"(?!\w)", got):
            return True
    return False


def regex_match(output: str, pattern: str, *, ignore_case: bool = False, full: bool = False) -> bool:
    """``pattern`` found in (or, with ``full``, matching all of) the output."""
    flags = re.IGNORECASE if ignore_case else 0
    rx = re.compile(pattern, flags | re.DOTALL)
    text = clean_text(output)
    return bool(rx.fullmatch(text.strip()) if full else rx.search(text))


_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+")
STRICT_PATTERN = r"####\s*(-?\$?[\d,]*\.?\d+)"


def _to_float(raw: str) -> float | None:
    try:
        return float(raw.replace(",", "").replace("$", "").rstrip("."))
    except ValueError:
        return None


def extract_strict(text: str, pattern: str = STRICT_PATTERN) -> float | None:
    """The number in the answer format (``#### 42`` by default; ``pattern``'s first group), or None."""
    m = re.search(pattern, clean_text(text))
    if not m:
        return None
    raw = m.group(1) if m.groups() else m.group(0)
    found = _NUMBER.findall(raw or "")
    return _to_float(found[-1]) if found else None


def extract_flexible(text: str) -> float | None:
    """The last number in the text (whatever the format)."""
    for raw in reversed(_NUMBER.findall(clean_text(text))):
        value = _to_float(raw)
        if value is not None:
            return value
    return None


def extract_number(text: str) -> float | None:
    """The GSM8K-style ``#### 42`` answer if present, else the last number in the text."""
    strict = extract_strict(text)
    return strict if strict is not None else extract_flexible(text)


def extract_answer(text: str, how: str | None) -> str:
    """The part of an output to score (the ``extract`` option): ``first_letter`` (first capital A-Z
    standing alone, e.g. "B" in "(B) yes"), ``first_word``, ``regex:PATTERN`` (group 1, else the
    match), ``json:FIELD`` (a field of the first JSON object, dots for nesting). Unmatched: ""."""
    text = clean_text(text)
    if not how:
        return text
    if how == "first_letter":
        m = re.search(r"(?<![A-Za-z])([A-Z])(?![a-z])", text)
        return m.group(1) if m else ""
    if how == "first_word":
        words = re.findall(r"[\w'-]+", text)
        return words[0] if words else ""
    if how.startswith("regex:"):
        m = re.search(how[len("regex:"):], text, re.DOTALL)
        if not m:
            return ""
        return m.group(1) if m.groups() else m.group(0)
    if how.startswith("json:"):
        ok, value, _err = parse_json(text)
        for key in how[len("json:"):].split("."):
            if not ok or not isinstance(value, dict) or key not in value:
                return ""
            value = value[key]
        return value if isinstance(value, str) else json.dumps(value)
    raise ValueError(f"unknown extract {how!r}")


def numeric_equal(a: float | None, b: float | None, tol: float = 1e-6) -> bool:
    if a is None or b is None:
        return False
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def strip_code_fence(text: str) -> str:
    """The content of the first ```fenced``` block if there is one, else the text."""
    m = re.search(r"```[a-zA-Z0-9_+-]*\n(.*?)(```|$)", text, flags=re.DOTALL)
    return m.group(1) if m else text


def parse_json(text: str, *, extract: bool = True) -> tuple[bool, Any, str | None]:
    """(ok, value, error). Accepts a fenced block; with ``extract``, the first balanced {...}/[...]."""
    text = clean_text(text).strip()
    candidates = [text, strip_code_fence(text).strip()]
    if extract:
        for opener in ("{", "["):
            start = text.find(opener)
            if start >= 0:
                candidates.append(_balanced(text, start))
    last_err = None
    for cand in candidates:
        if not cand:
            continue
        try:
            return True, json.loads(cand), None
        except (ValueError, RecursionError) as exc:
            last_err = str(exc)
    return False, None, last_err or "empty output"


def _balanced(text: str, start: int) -> str:
    pairs = {"{": "}", "[": "]"}
    stack = []
    in_str = esc = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in pairs:
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                return text[start:i + 1]
    return text[start:]


def mean(values: Sequence[float]) -> float | None:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else None


def accuracy(predicted: Sequence[Any], gold: Sequence[Any]) -> float | None:
    if not gold:
        return None
    return sum(1 for p, g in zip(predicted, gold) if p == g) / len(gold)


def confusion_matrix(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str] | None = None) -> dict:
    """``{"labels": [...], "matrix": rows = gold, columns = predicted}``."""
    labels = list(labels) if labels else sorted({*map(str, gold), *map(str, predicted)})
    index = {label: i for i, label in enumerate(labels)}
    for label in sorted({*map(str, gold), *map(str, predicted)} - set(index)):
        index[label] = len(labels)
        labels.append(label)
    matrix = [[0] * len(labels) for _ in labels]
    for p, g in zip(predicted, gold):
        matrix[index[str(g)]][index[str(p)]] += 1
    return {"labels": labels, "matrix": matrix}


def macro_f1(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str] | None = None) -> float | None:
    """Unweighted mean of per-class F1 over the gold labels (and ``labels`` when given)."""
    if not gold:
        return None
    classes = sorted(set(map(str, labels or [])) | set(map(str, gold)))
    scores = []
    for c in classes:
        tp = sum(1 for p, g in zip(predicted, gold) if str(p) == c and str(g) == c)
        fp = sum(1 for p, g in zip(predicted, gold) if str(p) == c and str(g) != c)
        fn = sum(1 for p, g in zip(predicted, gold) if str(p) != c and str(g) == c)
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores)


def ngrams(text: str, n: int) -> Counter:
    words = clean_text(text).lower().split()
    return Counter(tuple(words[i:i + n]) for i in range(max(0, len(words) - n + 1)))


def ngram_overlap(candidate: str, reference: str, n: int = 8) -> float:
    """Share of the candidate's word n-grams that also occur in the reference (0 when too short)."""
    cand = ngrams(candidate, n)
    if not cand:
        return 0.0
    ref = ngrams(reference, n)
    hit = sum(min(c, ref.get(g, 0)) for g, c in cand.items())
    return hit / sum(cand.values())


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al. 2021) for n samples with c correct."""
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod
