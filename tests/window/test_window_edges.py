"""Every window edge, driven by the fake clock: not yet open, waiting, exactly at the
boundary, closing mid-step (per on_window_overrun), a DST change, two windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.clock import FakeClock
from runbook.engine.gate import Gate
from runbook.engine.runner import Options, RunFailed, resume
from runbook.errors import Interrupted, WindowClosed
from runbook.store.base import open_store
from tests.window.kit import UTC, Recorder, at, engine, follow_clock, runbook

MOVE = """
runbook: move
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
  rollback_reserve: 30m
steps:
  - id: prepare
    uses: test.timed
    with: {seconds: 61}
  - id: stop
    uses: test.timed
    phase: downtime
    needs: [prepare]
    with: {seconds: 600}
"""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock(at("2026-11-28T20:00:00+00:00"))
    follow_clock(monkeypatch, c)
    return c


def test_a_downtime_step_before_the_window_opens_stops_and_says_when(
        clock: FakeClock, tmp_path: Path) -> None:
    e = engine(runbook(MOVE), clock, tmp_path)
    run_id = e.start(Options())
    with pytest.raises(WindowClosed) as err:
        e.execute()
    assert str(err.value) == (
        "step 'stop' is a downtime step and window 1 opens at 2026-11-28T22:00:00+01:00, "
        f"in 58m59s; resume then with: runbook resume {run_id}, or wait for it with --wait")
    rows = e.store.steps(run_id)
    assert rows["prepare"].state == "succeeded"
    assert "stop" not in rows or rows["stop"].started_at is None
    assert e.store.get_run(run_id).state == "paused"


def test_wait_counts_down_and_starts_the_step_when_the_window_opens(
        clock: FakeClock, tmp_path: Path) -> None:
    rec = Recorder()
    e = engine(runbook(MOVE), clock, tmp_path, gate=Gate(wait=True, operator="alice@ops"),
               emit=rec)
    run_id = e.start(Options())
    assert e.execute() == "succeeded"
    waits = rec.messages("window_wait")
    assert waits[0] == "waiting: window 1 opens at 2026-11-28T22:00:00+01:00, in 58m59s"
    assert waits[-1] == "waiting: window 1 opens at 2026-11-28T22:00:00+01:00, in 59s"
    assert len(waits) == 59
    # prepare's own 61s, then one-second slices up to the opening, then stop's 600s
    assert clock.sleeps == [61.0] + [1.0] * (58 * 60 + 59) + [600.0]
    stop = e.store.steps(run_id)["stop"]
    assert stop.started_at == "2026-11-28T21:00:00.000000+00:00"


def test_ctrl_c_while_waiting_stops_the_run_resumably(clock: FakeClock,
                                                    tmp_path: Path) -> None:
    rec = Recorder()
    e = engine(runbook(MOVE), clock, tmp_path, gate=Gate(wait=True, operator="alice@ops"),
               emit=rec)

    def interrupt(event: str, data: dict[str, object]) -> None:
        rec(event, data)
        if event == "window_wait":
            e.stop_requests += 1  # what the SIGINT handler does

    e.emit_cb = interrupt
    run_id = e.start(Options())
    with pytest.raises(Interrupted) as err:
        e.execute()
    assert str(err.value) == ("stopped while waiting for the window; resume with: runbook "
                              f"resume {run_id}")
    assert len(rec.messages("window_wait")) == 1
    assert e.store.get_run(run_id).state == "paused"


EDGE = """
runbook: edge
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
steps:
  - id: stop
    uses: test.timed
    phase: downtime
"""


@pytest.mark.parametrize("now, opens", [
    ("2026-11-28T21:00:00+00:00", True),   # the first instant of the window
    ("2026-11-28T22:59:59+00:00", True),   # its last second
    ("2026-11-28T23:00:00+00:00", False),  # the end instant already belongs outside
    ("2026-11-28T20:59:59+00:00", False),  # a second early
])
def test_the_window_includes_its_start_and_excludes_its_end(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, now: str, opens: bool) -> None:
    clock = FakeClock(at(now))
    follow_clock(monkeypatch, clock)
    e = engine(runbook(EDGE), clock, tmp_path)
    run_id = e.start(Options())
    if opens:
        assert e.execute() == "succeeded"
        return
    with pytest.raises(WindowClosed) as err:
        e.execute()
    if now.startswith("2026-11-28T23"):
        assert str(err.value) == ("step 'stop' is a downtime step and no window is left; "
                                  f"undo with: runbook rollback {run_id}")
    else:
        assert str(err.value) == (
            "step 'stop' is a downtime step and window 1 opens at 2026-11-28T22:00:00+01:00, "
            f"in 1s; resume then with: runbook resume {run_id}, or wait for it with --wait")


OVERRUN = """
runbook: overrun
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
  rollback_reserve: 15m
on_window_overrun: {action}
steps:
  - id: stop
    uses: test.timed
    phase: downtime
    estimate: 10m
    with: {{seconds: 600, revert_seconds: 600}}
  - id: sync
    uses: test.timed
    phase: downtime
    needs: [stop]
    estimate: 20m
    with: {{seconds: {sync}, hold: true}}
  - id: start-new
    uses: test.timed
    phase: {last_phase}
    needs: [sync]
    estimate: 5m
    with: {{seconds: 60}}
"""


def _overrun(action: str, sync: int, last_phase: str = "downtime") -> str:
    return OVERRUN.format(action=action, sync=sync, last_phase=last_phase)


def test_an_overrun_before_the_window_closes_pauses_at_once(
        clock: FakeClock, tmp_path: Path) -> None:
    clock.advance(3600)  # 21:00 UTC, the window opens
    rec = Recorder()
    e = engine(runbook(_overrun("pause", 95 * 60)), clock, tmp_path, emit=rec)
    run_id = e.start(Options())
    with pytest.raises(WindowClosed) as err:
        e.execute()
    notice = ("window overrun: step 'sync' still running at 2026-11-28T23:45:00+01:00; a "
              "rollback now takes 30m and would end 15m after the window closes at "
              "2026-11-29T00:00:00+01:00; on_window_overrun: pause")
    assert notice in rec.messages("notice")
    assert str(err.value) == (notice + "; no new step starts. Resume with: runbook resume "
                              f"{run_id}   or undo with: runbook rollback {run_id}")
    rows = e.store.steps(run_id)
    assert rows["sync"].state == "succeeded"  # a running step is let finish
    assert "start-new" not in rows or rows["start-new"].started_at is None
    overrun = [d for d in e.store.get_run(run_id).meta["decisions"] if d["kind"] == "overrun"]
    assert overrun == [{"kind": "overrun", "steps": ["sync"], "action": "pause",
                        "rollback": 1800.0, "window_end": "2026-11-29T00:00:00+01:00",
                        "late": 900.0, "at": "2026-11-28T22:45:00+00:00"}]


def test_the_window_closing_mid_step_rolls_back_when_the_runbook_says_so(
        clock: FakeClock, tmp_path: Path) -> None:
    clock.advance(3600)
    rec = Recorder(release=False)  # the held step ends only when the engine cancels it
    e = engine(runbook(_overrun("rollback", 135 * 60)), clock, tmp_path, emit=rec)
    run_id = e.start(Options())
    with pytest.raises(RunFailed) as err:
        e.execute()
    assert str(err.value) == (
        "window overrun: step 'sync' still running at 2026-11-29T00:25:00+01:00; a rollback "
        "now takes 30m and would end 55m after the window closes at 2026-11-29T00:00:00+01:00;"
        " on_window_overrun: rollback")
    rows = e.store.steps(run_id)
    assert rows["sync"].state == "cancelled"
    assert rows["stop"].state == "reverted"
    assert e.store.get_run(run_id).state == "rolled_back"


def test_continue_lets_the_running_step_finish_but_no_downtime_step_starts_after_the_end(
        clock: FakeClock, tmp_path: Path) -> None:
    clock.advance(3600)
    rec = Recorder()
    e = engine(runbook(_overrun("continue", 135 * 60)), clock, tmp_path, emit=rec)
    run_id = e.start(Options())
    with pytest.raises(WindowClosed) as err:
        e.execute()
    assert any(m.startswith("window overrun: step 'sync'") and
               m.endswith("on_window_overrun: continue") for m in rec.messages("notice"))
    assert e.store.steps(run_id)["sync"].state == "succeeded"
    assert str(err.value) == (
        "step 'start-new' is a downtime step and window 1 closed at 2026-11-29T00:00:00+01:00 "
        "and the runbook does not let this run continue in a later window; undo with: "
        f"runbook rollback {run_id}")


def test_continue_finishes_a_run_whose_last_step_is_after_the_downtime(
        clock: FakeClock, tmp_path: Path) -> None:
    clock.advance(3600)
    e = engine(runbook(_overrun("continue", 135 * 60, "after")), clock, tmp_path)
    e.start(Options())
    assert e.execute() == "succeeded"


DST = """
runbook: dst
window:
  start: "2026-10-25T01:30:00"
  {length}
  timezone: Europe/Berlin
steps:
  - id: stop
    uses: test.timed
    phase: downtime
"""


def test_a_named_timezone_across_the_dst_change(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    # Berlin leaves summer time at 03:00 CEST = 01:00 UTC on 2026-10-25; 01:30 local is
    # still CEST (23:30 UTC the day before)
    by_duration = runbook(DST.format(length="duration: 2h"))
    by_end = runbook(DST.format(length='end: "2026-10-25T03:00:00"'))
    # (compared in UTC: an instant in the repeated hour never equals one in another zone)
    assert by_duration.windows[0].start.astimezone(UTC) == at("2026-10-24T23:30:00+00:00")
    # two hours of elapsed time end at 02:30 CET; the wall-clock end 03:00 CET is 2h30m
    assert by_duration.windows[0].end.astimezone(UTC) == at("2026-10-25T01:30:00+00:00")
    assert by_end.windows[0].end.astimezone(UTC) == at("2026-10-25T02:00:00+00:00")

    early = FakeClock(at("2026-10-24T23:00:00+00:00"))
    follow_clock(monkeypatch, early)
    e = engine(by_duration, early, tmp_path)
    run_id = e.start(Options())
    with pytest.raises(WindowClosed) as err:
        e.execute()
    assert str(err.value) == (
        "step 'stop' is a downtime step and window 1 opens at 2026-10-25T01:30:00+02:00, in "
        f"30m; resume then with: runbook resume {run_id}, or wait for it with --wait")

    # 01:45 UTC = 02:45 CET: after the 2h window, inside the one that ends at 03:00 CET
    late = FakeClock(at("2026-10-25T01:45:00+00:00"))
    follow_clock(monkeypatch, late)
    closed = engine(by_duration, late, tmp_path)
    closed_id = closed.start(Options())
    with pytest.raises(WindowClosed) as err:
        closed.execute()
    assert str(err.value) == ("step 'stop' is a downtime step and no window is left; undo "
                              f"with: runbook rollback {closed_id}")
    still_open = engine(by_end, late, tmp_path, store=open_store("memory://"))
    still_open.start(Options())
    assert still_open.execute() == "succeeded"


TWO = """
runbook: two
windows:
  - start: "2026-11-28T22:00:00+01:00"
    duration: 1h
    continue_in_next: {carry}
  - start: "2026-11-29T22:00:00+01:00"
    duration: 1h
on_window_overrun: continue
steps:
  - id: stop
    uses: test.timed
    phase: downtime
    with: {{seconds: 1800}}
  - id: copy
    uses: test.timed
    phase: downtime
    needs: [stop]
    with: {{seconds: 3000}}
  - id: start-new
    uses: test.timed
    phase: downtime
    needs: [copy]
    with: {{seconds: 60}}
"""


def test_a_run_continues_in_the_next_window_where_the_runbook_allows_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clock = FakeClock(at("2026-11-28T21:00:00+00:00"))
    follow_clock(monkeypatch, clock)
    store = open_store(str(tmp_path / "state.db"))
    rb = runbook(TWO.format(carry="true"))
    e = engine(rb, clock, tmp_path, store=store)
    run_id = e.start(Options())
    with pytest.raises(WindowClosed) as err:
        e.execute()
    # copy ran past the end of window 1 (22:20 UTC); the last step waits for window 2
    assert str(err.value) == (
        "step 'start-new' is a downtime step and window 2 opens at 2026-11-29T22:00:00+01:00,"
        f" in 22h40m; resume then with: runbook resume {run_id}, or wait for it with --wait")
    later = engine(rb, clock, tmp_path, store=store, gate=Gate(wait=True, operator="bob@ops"))
    later.run_id, later.kind = run_id, "run"
    later.preflight()
    assert resume(later, Options()) == "succeeded"
    assert store.steps(run_id)["start-new"].started_at == "2026-11-29T21:00:00.000000+00:00"


def test_a_run_may_not_continue_in_a_window_the_runbook_does_not_chain(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clock = FakeClock(at("2026-11-28T21:00:00+00:00"))
    follow_clock(monkeypatch, clock)
    e = engine(runbook(TWO.format(carry="false")), clock, tmp_path,
               gate=Gate(wait=True, operator="alice@ops"))
    run_id = e.start(Options())
    with pytest.raises(WindowClosed) as err:
        e.execute()
    assert str(err.value) == (
        "step 'start-new' is a downtime step and window 1 closed at 2026-11-28T23:00:00+01:00 "
        "and the runbook does not let this run continue in a later window; undo with: "
        f"runbook rollback {run_id}")
