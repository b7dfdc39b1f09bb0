"""kill -9 at every transition point, then resume: each side effect happens exactly once.

The CLI runs in a subprocess; RUNBOOK_KILL_AT makes it SIGKILL itself right before or
after the named checkpoint is written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

STEPS = ["a", "b", "c", "d"]
POINTS = [f"{s}:{t}:{w}" for s in STEPS for t in ("start", "succeed")
          for w in ("before", "after")] + ["run:start:after"]


def runbook(tmp: Path, verify: bool = True) -> Path:
    log = tmp / "effects"

    def step(name: str, needs: list[str]) -> str:
        check = f", verify: [grep, -qx, {name}, '{log}']" if verify else ""
        return (f"  - id: {name}\n    uses: shell\n    needs: [{', '.join(needs)}]\n"
                f"    with: {{command: [sh, -c, 'echo {name} >> {log}']{check}}}\n")

    text = ("runbook: crash\nsteps:\n" + step("a", []) + step("b", ["a"]) + step("c", ["a"])
            + step("d", ["b", "c"]))
    path = tmp / "crash.yml"
    path.write_text(text)
    return path


def cli(tmp: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("RUNBOOK_KILL_AT", None)
    if kill_at:
        env["RUNBOOK_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "runbook.cli.main", "--state",
                           str(tmp / "state.db"), *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_every_transition_then_resume_does_everything_once(tmp_path: Path,
                                                                   point: str) -> None:
    path = runbook(tmp_path)
    first = cli(tmp_path, "run", str(path), "--run-id", "r1", kill_at=point)
    assert first.returncode == -signal.SIGKILL, first.stderr
    resumed = cli(tmp_path, "resume", "r1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    effects = (tmp_path / "effects").read_text().split()
    assert sorted(effects) == STEPS  # every side effect, none twice
    status = cli(tmp_path, "status", "r1", "--json")
    assert '"state": "succeeded"' in status.stdout


def test_interrupted_step_without_verify_waits_for_the_operator(tmp_path: Path) -> None:
    path = runbook(tmp_path, verify=False)
    first = cli(tmp_path, "run", str(path), "--run-id", "r1", kill_at="d:succeed:before")
    assert first.returncode == -signal.SIGKILL
    resumed = cli(tmp_path, "resume", "r1")
    assert resumed.returncode == 3
    assert ("step(s) d were running when the run stopped and cannot tell whether they "
            "finished") in resumed.stderr
    assert "runbook resume r1 --skip-interrupted" in resumed.stderr
    # the operator checked: d did run. Skipping it must not run it again.
    done = cli(tmp_path, "resume", "r1", "--skip-interrupted")
    assert done.returncode == 0, done.stderr
    assert sorted((tmp_path / "effects").read_text().split()) == STEPS


def test_rerun_interrupted_runs_the_step_again(tmp_path: Path) -> None:
    path = runbook(tmp_path, verify=False)
    cli(tmp_path, "run", str(path), "--run-id", "r1", kill_at="b:start:after")
    done = cli(tmp_path, "resume", "r1", "--rerun-interrupted")
    assert done.returncode == 0, done.stderr
    assert sorted((tmp_path / "effects").read_text().split()) == STEPS


def test_resume_refuses_a_changed_runbook_unless_accepted(tmp_path: Path) -> None:
    path = runbook(tmp_path)
    cli(tmp_path, "run", str(path), "--run-id", "r1", kill_at="b:start:before")
    path.write_text(path.read_text().replace("echo d >>", "echo  d >>") + "  - id: e\n    uses: wait\n"
                    "    with: {duration: 0s}\n")
    refused = cli(tmp_path, "resume", "r1")
    assert refused.returncode == 2
    assert ("the runbook changed since this run began:\n  step 'd' was changed\n"
            "  step 'e' was added\nresume with --accept-changes") in refused.stderr
    accepted = cli(tmp_path, "resume", "r1", "--accept-changes")
    assert accepted.returncode == 0, accepted.stderr


def test_a_second_process_cannot_drive_the_same_run(tmp_path: Path) -> None:
    from runbook.store.base import open_store, process_holder
    from runbook.store.sql import SqlStore

    path = runbook(tmp_path)
    cli(tmp_path, "run", str(path), "--run-id", "r1", kill_at="b:start:before")
    store = open_store(str(tmp_path / "state.db"))
    assert isinstance(store, SqlStore)
    holder = process_holder("r1")
    holder["pid"] = os.getppid()  # a live process that is not this one
    store.acquire_lock("run:r1", holder, steal_if=lambda h: True)
    blocked = cli(tmp_path, "resume", "r1")
    assert blocked.returncode == 2
    assert "lock 'run:r1' is held by run=r1" in blocked.stderr
    assert "runbook unlock 'run:r1'" in blocked.stderr
    assert cli(tmp_path, "unlock", "run:r1").returncode == 0
    assert cli(tmp_path, "resume", "r1").returncode == 0


def test_two_runs_against_the_same_targets_are_refused(tmp_path: Path) -> None:
    path = runbook(tmp_path)
    cli(tmp_path, "run", str(path), "--run-id", "r1", kill_at="b:start:before")
    second = cli(tmp_path, "run", str(path), "--run-id", "r2")
    assert second.returncode == 2
    assert "is held by run=r1" in second.stderr


def undoable_runbook(tmp: Path) -> Path:
    def step(name: str, needs: list[str], fail: bool = False) -> str:
        command = "exit 7" if fail else f"touch {tmp}/m-{name}"
        return (f"  - id: {name}\n    uses: shell\n    needs: [{', '.join(needs)}]\n"
                f"    with: {{command: [sh, -c, '{command}'], creates: '{tmp}/m-{name}', "
                f"revert: [rm, -f, '{tmp}/m-{name}']}}\n")

    path = tmp / "undo.yml"
    path.write_text("runbook: undo\nsteps:\n" + step("a", []) + step("b", ["a"])
                    + step("c", ["b"]) + step("d", ["c"], fail=True))
    return path


@pytest.mark.parametrize("point", ["c:revert:before", "c:revert:after", "b:reverted:before",
                                   "b:reverted:after", "run:roll_back:after"])
def test_kill_during_rollback_then_rollback_again_finishes_it(tmp_path: Path,
                                                              point: str) -> None:
    path = undoable_runbook(tmp_path)
    first = cli(tmp_path, "run", str(path), "--run-id", "r1", kill_at=point)
    assert first.returncode == -signal.SIGKILL, first.stderr
    again = cli(tmp_path, "rollback", "r1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in tmp_path.glob("m-*")) == []
    status = cli(tmp_path, "status", "r1", "--json")
    assert '"state": "rolled_back"' in status.stdout


def test_ctrl_c_checkpoints_and_prints_the_resume_command(tmp_path: Path) -> None:
    import time

    flag = tmp_path / "release"
    (tmp_path / "slow.yml").write_text(
        "runbook: slow\nsteps:\n"
        f"  - id: hold\n    uses: shell\n    with: {{command: [sh, -c, 'while [ ! -e {flag} ]; "
        "do sleep 0.05; done'], read_only: true}\n"
        f"  - id: after\n    uses: shell\n    needs: [hold]\n    with: {{command: [touch, "
        f"'{tmp_path}/after']}}\n")
    env = {k: v for k, v in os.environ.items() if k != "RUNBOOK_KILL_AT"}
    proc = subprocess.Popen([sys.executable, "-m", "runbook.cli.main", "--state",
                             str(tmp_path / "state.db"), "run", "slow.yml", "--run-id", "r1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "hold" not in cli(tmp_path, "status", "r1").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    flag.write_text("")  # the running step may now finish
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, out + err
    assert "no new steps will start" in err
    assert "runbook resume r1" in err
    assert not (tmp_path / "after").exists()
    done = cli(tmp_path, "resume", "r1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "after").exists()
