"""Progress output: plain lines off a terminal, the live status block on one, and the
CLI's exit 3 with the window's opening time."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest

from runbook.cli.main import main
from runbook.cli.output import LiveView, Printer, printer_for
from tests.window.kit import at, runbook

RB = """
runbook: live
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
steps:
  - id: stop
    uses: wait
    phase: downtime
    with: {duration: 1s}
  - id: disks
    uses: wait
    needs: [stop]
    for_each: [a, b]
    with: {duration: 1s}
"""


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_output_is_plain_lines() -> None:
    out = io.StringIO()
    printer = printer_for(runbook(RB), out)
    assert type(printer) is Printer
    printer("step_started", {"key": "stop", "uses": "wait"})
    printer("decision", {"message": "go: proceeding with 'stop'"})
    lines = out.getvalue().splitlines()
    assert [line[9:] for line in lines] == ["▶ stop (wait)", "! go: proceeding with 'stop'"]
    assert "\x1b[" not in out.getvalue()


def test_a_long_wait_prints_a_handful_of_countdown_lines() -> None:
    printer = Printer(io.StringIO())
    shown = []
    for minutes_left in range(90, 0, -1):
        line = printer.line("window_wait", {"seconds": minutes_left * 60.0 - 1,
                                            "message": f"waiting: {minutes_left}"})
        if line:
            shown.append(line)
    # the first notice, then at 60, 30, 15, 10, 5, 2 and 1 minutes before the window
    assert shown == ["⏳ waiting: 90", "⏳ waiting: 60", "⏳ waiting: 30", "⏳ waiting: 15",
                     "⏳ waiting: 10", "⏳ waiting: 5", "⏳ waiting: 2", "⏳ waiting: 1"]


def test_on_a_terminal_the_status_block_shows_states_countdown_and_forecast() -> None:
    now = at("2026-11-28T20:30:00+00:00")
    out = Tty()
    view = printer_for(runbook(RB), out)
    assert isinstance(view, LiveView)
    view.now = lambda: now
    assert view.block()[-1] == "  window opens in 30m"
    view("step_started", {"key": "stop", "uses": "wait"})
    view("step_succeeded", {"key": "stop", "seconds": 1.0, "changed": False})
    view("step_started", {"key": "disks[0]", "uses": "wait"})
    view("forecast", {"needed": 600.0, "usable": 5400.0, "fits": True,
                      "window_end": "2026-11-29T00:00:00+01:00"})
    view._stop.set()  # no redraw thread racing the assertions below
    block = view.block()
    assert block[1].split() == ["✔", "stop", "succeeded", "0s"]
    assert block[2].split()[:3] == ["▶", "disks[0]", "running"]
    assert block[-2:] == ["  window closes in 2h30m",
                          "  forecast: needs 10m of 1h30m usable: fits"]
    # each redraw first moves up over the previous block and clears it
    assert out.getvalue().count("\x1b[") >= 3


def test_asking_on_the_terminal_hides_the_block() -> None:
    out = Tty()
    view = LiveView(runbook(RB), out)
    view("step_started", {"key": "stop", "uses": "wait"})
    view._stop.set()
    seen = []

    def ask(prompt: str) -> bool:
        seen.append(out.getvalue())
        return True

    assert view.wrap_ask(ask)("Go?") is True
    assert seen[0].endswith("\x1b[J")  # the block was erased before the question


def test_the_cli_exits_3_and_says_when_the_window_opens(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    year = datetime.now().year + 2
    path = tmp_path / "live.yml"
    path.write_text(RB.replace("2026-11-28", f"{year}-11-28"))
    code = main(["--state", str(tmp_path / "state.db"), "run", str(path)])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith(f"stopped: step 'stop' is a downtime step and window 1 opens at "
                          f"{year}-11-28T22:00:00+01:00, in ")
    assert err.rstrip().endswith("or wait for it with --wait")
