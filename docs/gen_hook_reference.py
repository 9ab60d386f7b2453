"""Regenerate the generated parts of docs/plugins.md: the hook reference and the code snippets.

* The hook reference (between ``<!-- hook-reference:start -->`` and ``<!-- hook-reference:end -->``)
  is rendered from the specs and docstrings in ``sftkit/hookspecs.py``.
* A snippet (``<!-- snippet: PATH#NAME -->`` + a fenced block + ``<!-- /snippet -->``) is the region
  of the file ``PATH`` (relative to the repository) between the lines ``# [docs:NAME]`` and
  ``# [/docs:NAME]``, dedented; without ``#NAME`` the whole file. Snippets come from tested files,
  so the examples in the docs are code that runs.

Usage: ``python docs/gen_hook_reference.py`` rewrites docs/plugins.md; ``--check`` exits 1 when it
is out of date (tests/test_docs.py runs the same check).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"
REF_START, REF_END = "<!-- hook-reference:start -->", "<!-- hook-reference:end -->"
SNIPPET = re.compile(r"(<!-- snippet: (?P<ref>[^ ]+) -->\n```(?P<lang>[a-z]*)\n)(?P<body>.*?)(```\n<!-- /snippet -->)", re.S)
LANGS = {".py": "python", ".toml": "toml", ".md": "markdown", ".jsonl": "json"}


def hook_specs() -> list:
    """The hook spec functions of ``sftkit.hookspecs``, in source order."""
    from sftkit import hookspecs

    specs = [fn for name, fn in vars(hookspecs).items()
             if name.startswith("sftkit_") and callable(fn) and hasattr(fn, "sftkit_spec")]
    return sorted(specs, key=lambda fn: inspect.getsourcelines(fn)[1])


def undocumented_hooks() -> list[str]:
    """Names of hook specs without a docstring."""
    return [fn.__name__ for fn in hook_specs() if not (fn.__doc__ or "").strip()]


def rst_to_md(text: str) -> str:
    """The reST bits used in docstrings, as Markdown: ``code``, :role:`target`, ``::`` blocks."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-1] if not line.rstrip().endswith(" ::") else line.rstrip()[:-3])
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:] if lines[i].startswith("    ") else "")
                i += 1
            while block and not block[0].strip():
                block.pop(0)
            while block and not block[-1].strip():
                block.pop()
            lang = "toml" if block and block[0].lstrip().startswith("[") else "python"
            out += ["", f"```{lang}", *block, "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def typed_signature(fn) -> str:
    """``name(param: Type, ...) -> Return`` as the spec declares it (annotations are strings: the
    types sit behind ``TYPE_CHECKING`` in hookspecs.py, so nothing is imported to show them)."""
    sig = inspect.signature(fn)

    def shown(annotation) -> str:
        return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)

    params = ", ".join(name if p.annotation is inspect.Parameter.empty else f"{name}: {shown(p.annotation)}"
                       for name, p in sig.parameters.items())
    returns = "" if sig.return_annotation is inspect.Signature.empty else f" -> {shown(sig.return_annotation)}"
    return f"{fn.__name__}({params}){returns}"


def render_hook_reference() -> str:
    """The Markdown hook reference: the ``register`` callback, then every hook with its docstring."""
    from sftkit import hookspecs

    module_doc = inspect.cleandoc(hookspecs.__doc__ or "")
    register_part = module_doc[module_doc.find("``register(name"):] if "``register(name" in module_doc else ""
    parts = ["Generated from `sftkit/hookspecs.py` by `docs/gen_hook_reference.py`; do not edit by hand.", ""]
    if register_part:
        parts += ["### The `register` callback", "", rst_to_md(register_part), ""]
    for fn in hook_specs():
        opts = getattr(fn, "sftkit_spec", {}) or {}
        flags = " (firstresult: the first non-None answer wins)" if opts.get("firstresult") else ""
        parts += [f"### `{typed_signature(fn)}`{flags}", "", rst_to_md(inspect.cleandoc(fn.__doc__ or "")), ""]
    return "\n".join(parts).rstrip() + "\n"


def snippet_text(ref: str) -> str:
    """The text a snippet reference points at (see the module docstring)."""
    path_text, _, name = ref.partition("#")
    path = REPO / path_text
    text = path.read_text(encoding="utf-8")
    if not name:
        return text if text.endswith("\n") else text + "\n"
    start = re.search(rf"^[ \t]*# \[docs:{re.escape(name)}\][ \t]*\n", text, re.M)
    end = re.search(rf"^[ \t]*# \[/docs:{re.escape(name)}\][ \t]*$", text, re.M)
    if not start or not end or end.start() < start.end():
        raise ValueError(f"{path_text}: no '# [docs:{name}]' ... '# [/docs:{name}]' region")
    region = text[start.end():end.start()]
    region = "\n".join(line for line in region.split("\n") if not re.match(r"^\s*# \[/?docs:", line))
    return textwrap.dedent(region).strip("\n") + "\n"


def update(doc: str) -> str:
    """``doc`` with the hook reference and every snippet regenerated."""
    if REF_START in doc and REF_END in doc:
        head, rest = doc.split(REF_START, 1)
        _, tail = rest.split(REF_END, 1)
        doc = f"{head}{REF_START}\n{render_hook_reference()}{REF_END}{tail}"

    def fill(m: re.Match) -> str:
        return m.group(1) + snippet_text(m.group("ref")) + m.group(5)

    return SNIPPET.sub(fill, doc)


def snippet_refs(doc: str) -> list[str]:
    return [m.group("ref") for m in SNIPPET.finditer(doc)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/plugins.md is out of date")
    args = parser.parse_args(argv)
    missing = undocumented_hooks()
    if missing:
        print(f"hooks without a docstring in sftkit/hookspecs.py: {', '.join(missing)}", file=sys.stderr)
        return 1
    current = DOC.read_text(encoding="utf-8")
    fresh = update(current)
    if args.check:
        if fresh != current:
            print("docs/plugins.md is out of date: run python docs/gen_hook_reference.py", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        DOC.write_text(fresh, encoding="utf-8")
        print(f"updated {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
