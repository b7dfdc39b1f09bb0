"""The step catalogue in docs/ is what the code says; the README shows CI's test command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_step_catalogue_is_current() -> None:
    out = subprocess.run([sys.executable, "-m", "runbook.cli.main", "steps", "--markdown"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    doc = (ROOT / "docs" / "steps.md").read_text()
    assert out.strip() in doc, "regenerate docs/steps.md with: runbook steps --markdown"
    for name in ("shell", "ccdb.rewrite_hosts", "routes.compare", "gateway.switch"):
        assert f"### `{name}`" in doc


def test_readme_shows_the_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test.sh" in ci
    assert "scripts/test.sh" in readme and "scripts/rehearse.sh" in readme
