"""``runbook lab up | down | status | reset`` and the lab a rehearsal runs against.

Imported by the argument parser of every command, so it imports little at module level.

The lab itself is :mod:`runbook.lab.stage`; this module only starts it (detached, or for
the length of one rehearsal), finds a running one and prints what it is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runbook.errors import InputError, Stopped

# RUNBOOK_LAB_DIR moves it, e.g. so tests never meet a developer's running lab.
LAB_DIR = Path(os.environ.get("RUNBOOK_LAB_DIR") or Path(".runbook") / "lab")
START_TIMEOUT = 120.0


def add_parser(sub: Any) -> None:
    lab = sub.add_parser("lab", help="the local mini-foundation rehearsals run against")
    lab.add_argument("action", choices=["up", "down", "status", "reset"],
                     help="reset: down, then up (a lab keeps what earlier rehearsals did)")
    lab.add_argument("--dir", default=str(LAB_DIR), help="where the lab keeps its state "
                                                          "(default .runbook/lab)")
    lab.add_argument("--json", action="store_true", help="status as JSON")


@contextlib.contextmanager
def rehearsal_lab(directory: str | Path = LAB_DIR) -> Iterator[dict[str, Any]]:
    """The targets of the running lab, else of a lab started for this block only."""
    from runbook.lab.stage import lab_session, read_state

    state = read_state(directory)
    if state is not None:
        print(f"lab: using the running lab in {directory} (pid {state['pid']}); it keeps what "
              "earlier rehearsals did (a fresh one: runbook lab reset)", flush=True)
        _print_notes(state["notes"])
        _print_simulated(state.get("components", []))
        yield dict(state["targets"])
        return
    from runbook.lab.servers import ServerUnavailable

    print("lab: starting a lab for this rehearsal (keep one running with: runbook lab up)",
          flush=True)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            lab = stack.enter_context(lab_session())
        except ServerUnavailable as exc:
            raise InputError(f"the lab cannot start here: {exc}; or rehearse against a "
                             "staging foundation with --targets FILE") from None
        stack.callback(print, "lab: stopping", flush=True)  # runs before the lab stops
        print(f"lab: ready in {time.monotonic() - started:.1f}s", flush=True)
        _print_notes(lab.notes)
        _print_simulated(lab.components)
        try:
            yield lab.targets
        except Stopped:
            # The run can be resumed, but not against this lab: it stops with this command.
            print("lab: this lab stops now, so this rehearsal cannot be resumed against it; "
                  "keep a lab between commands with: runbook lab up", flush=True)
            raise


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"lab: substituted: {note}", flush=True)


def _print_simulated(components: list[dict[str, Any]]) -> None:
    fakes = [c["name"] for c in components if c["kind"] == "simulated"]
    if fakes:
        print(f"lab: simulated (stand-ins, not the real servers): {'; '.join(fakes)}", flush=True)


def rehearsal_epilogue(store: Any, run_id: str, run_root: Path) -> None:
    """End a rehearsal with its timing report and the path of its HTML report."""
    from runbook.report import render
    from runbook.report.data import run_report

    try:
        report = run_report(store, run_id)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more
        print(f"(no timing report: {exc})", file=sys.stderr)
        return
    print()
    print(render.text(report), end="")
    try:
        from runbook.report.html import html
    except ImportError:
        return
    path = run_root / run_id / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html(report, []))
    print(f"HTML report: {path}")


def cmd_lab(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if args.action == "up":
        return _up(directory)
    if args.action == "down":
        return _down(directory)
    if args.action == "reset":
        _down(directory)
        return _up(directory)
    return _status(directory, args.json)


def _up(directory: Path) -> int:
    import signal
    import subprocess

    from runbook.lab.stage import STATE_FILE, read_state

    state = read_state(directory)
    if state is not None:
        print(f"a lab is already running in {directory} (pid {state['pid']})")
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).unlink(missing_ok=True)
    log = (directory / "lab.log").open("ab")
    # A session of its own: the lab outlives this command and ignores its terminal's ^C.
    proc = subprocess.Popen([sys.executable, "-m", "runbook.lab.stage", "serve",
                             str(directory)], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(directory)
        if state is not None:
            print(f"lab up (pid {proc.pid}) in {directory}")
            _describe(state)
            print("rehearse against it: runbook rehearse runbooks/cf-vcloud-to-openstack.yml")
            return 0
        if proc.poll() is not None:
            raise InputError(f"the lab did not start (exit {proc.returncode}); see "
                             f"{directory / 'lab.log'}")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    raise InputError(f"the lab did not start within {START_TIMEOUT:.0f}s; see "
                     f"{directory / 'lab.log'}")


def _down(directory: Path) -> int:
    import signal

    from runbook.lab.stage import read_state

    state = read_state(directory)
    if state is None:
        print(f"no lab is running in {directory}")
        return 0
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"lab down (pid {pid} stopped)")
            return 0
        time.sleep(0.2)
    raise InputError(f"the lab (pid {pid}) did not stop within 60s")


def _status(directory: Path, as_json: bool) -> int:
    import json

    from runbook.lab.stage import read_state

    state = read_state(directory)
    if as_json:
        print(json.dumps({"running": state is not None, **(state or {})}, indent=2))
        return 0
    if state is None:
        print(f"no lab is running in {directory} (start one: runbook lab up)")
        return 0
    print(f"lab running (pid {state['pid']}) in {directory}, "
          f"up {time.time() - float(state['started_at']):.0f}s")
    _describe(state)
    return 0


def _describe(state: dict[str, Any]) -> None:
    for part in state.get("components", []):
        kind = "" if part["kind"] == "real" else " [simulated]"
        print(f"  {part['name']}{kind}: {part['where']} (pid {part['pid']})")
    print(f"  targets: {', '.join(state['targets'])} (runbook lab status --json shows them)")
    for note in state.get("notes", []):
        print(f"  substituted  {note}")
