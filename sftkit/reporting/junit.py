"""JUnit XML for CI systems (``--junit FILE`` on ``sftkit run``, ``eval`` and ``compare``).

One test case per gate and per evaluator verdict, so a CI system lists them natively beside the
command's exit code. A case fails exactly when the command counts it against the exit code: a
violated gate (exit 3), an errored evaluator (exit 4, an ``<error>``), a comparison that ``compare
--gate`` rejects. A verdict that fails nothing passes, with the verdict and its reason as output.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Case:
    """One JUnit test case: ``failure`` / ``error`` hold the message when it did not pass."""

    name: str
    classname: str
    failure: str | None = None
    error: str | None = None
    output: str | None = None


def run_cases(metrics: dict, classname: str = "sftkit.run") -> list[Case]:
    """The cases of a run's (or an evaluation's) ``metrics.json``: each defined gate, each verdict."""
    cases = []
    for row in metrics.get("eval") or []:
        label = str(row.get("label"))
        gate = row.get("gate") or {}
        if gate.get("defined") or gate.get("passed") is False:
            failed = "; ".join(gate.get("failures") or []) or gate.get("message") or "gate failed"
            cases.append(Case(f"gate {label}.{row.get('primary')}", f"{classname}.gates",
                              failure=None if gate.get("passed", True) else failed,
                              output="; ".join(gate.get("notes") or []) or None))
        verdict = row.get("verdict") or "not tested"
        cases.append(Case(f"verdict {label}", f"{classname}.verdicts",
                          error=row.get("reason") or "evaluator error" if verdict == "error" else None,
                          output=f"{verdict}: {row.get('reason') or ''}".rstrip(": ")))
    return cases


def error_case(command: str, message: str) -> Case:
    """The one case of a command that stopped before it had anything to judge."""
    return Case(command, f"sftkit.{command}", error=message)


def write(path: Path | str, suite: str, cases: list[Case]) -> Path:
    """Write ``cases`` as one ``<testsuite>`` in a ``<testsuites>`` document."""
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                         failures=str(sum(c.failure is not None for c in cases)),
                         errors=str(sum(c.error is not None for c in cases)), skipped="0")
    for c in cases:
        case = ET.SubElement(node, "testcase", name=c.name, classname=c.classname)
        if c.failure is not None:
            ET.SubElement(case, "failure", message=c.failure[:1000]).text = c.failure
        if c.error is not None:
            ET.SubElement(case, "error", message=c.error[:1000]).text = c.error
        if c.output:
            ET.SubElement(case, "system-out").text = c.output
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_outcome(path: Path | str, command: str, metrics: dict | None, error: Exception | None = None) -> Path:
    """The JUnit file of ``sftkit run`` / ``eval``: its gates and verdicts, or (when it stopped before
    judging anything) one errored case with the message."""
    if metrics is None:
        return write(path, f"sftkit {command}", [error_case(command, str(error or "no metrics"))])
    return write(path, f"sftkit {command}", run_cases(metrics, f"sftkit.{command}"))
