"""End-to-end fixtures: the lab, and the ``runbook`` command run the way a user runs it.

The CLI runs as a subprocess from the repository root (the reference runbooks name
``manifests/`` and ``runbooks/data/`` relative to it) with its state, runs and any lab
directory under the test's temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.lab.servers import ServerUnavailable
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "runbooks" / "cf-vcloud-to-openstack.yml"


@dataclass
class Cli:
    tmp: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["RUNBOOK_LAB_DIR"] = str(self.tmp / "lab")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def __call__(self, *args: str, timeout: float = 300,
                 cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "runbook.cli.main", "--state",
                str(self.tmp / "state.db"), *args]
        return subprocess.run(argv, cwd=cwd, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A lab in this process; parametrize indirectly with the parts to leave out."""
    from runbook.lab.stage import lab_session

    without = tuple(getattr(request, "param", ()))
    try:
        with lab_session(tmp_path / "lab-inproc", without=without) as running:
            yield running
    except ServerUnavailable as exc:
        missing(str(exc))


def write_targets(lab: Any, path: Path) -> Path:
    path.write_text(yaml.safe_dump({"targets": lab.targets}))
    return path


def outputs(state_db: Path) -> tuple[str, str, dict[str, Any]]:
    """(run id, run state, step key -> row) of the newest run in ``state_db``."""
    from runbook.store.base import open_store

    store = open_store(str(state_db))
    run = store.list_runs()[-1]
    return run.run_id, run.state, store.steps(run.run_id)
