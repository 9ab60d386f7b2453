"""docs/components.md is generated from the registry and must match it."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_components_page_is_current_and_lists_every_builtin():
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "gen_components.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from sftkit.plugins import make_host

    text = (REPO / "docs" / "components.md").read_text(encoding="utf-8")
    host = make_host(builtins=True, entry_points=False)
    for kind in ("sources", "formatters", "strategies", "evaluators"):
        for name in host.registry.names(kind):
            assert f"### `{name}`" in text, f"{kind} {name} missing from docs/components.md"
