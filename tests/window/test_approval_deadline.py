"""Approvals with a deadline: in time proceeds, late does not, who and when is kept."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from runbook.clock import FakeClock
from runbook.engine.gate import Gate, check_deadlines
from runbook.engine.runner import Engine, Options, attach, resume
from runbook.errors import ApprovalPending, GoNoGoRefused
from runbook.report.data import run_report
from runbook.store.base import open_store
from tests.window.kit import at, engine, follow_clock, registry, runbook

RB = """
runbook: appr
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
  rollback_reserve: 30m
steps:
  - id: ok
    uses: approve
    with: {prompt: "Freeze the source?"}
    deadline: {before: window_start, minus: 15m}
  - id: stop
    uses: test.timed
    phase: downtime
    needs: [ok]
"""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock(at("2026-11-28T20:00:00+00:00"))
    follow_clock(monkeypatch, c)
    return c


def approve(db: str, run_id: str, step: str, who: str, clock: FakeClock) -> None:
    """What `runbook approve` stores (its runbook uses a test step type the CLI does not
    know, so the command itself cannot load it)."""
    store = open_store(db)
    row = store.steps(run_id)[step]
    row.info = dict(row.info, approval={"by": who, "at": clock.now().isoformat(
        timespec="microseconds"), "via": "cli"})
    store.save_step(row, event="approved", from_state=row.state, detail={"by": who})


def _pending(clock: FakeClock, tmp_path: Path) -> tuple[str, str]:
    db = str(tmp_path / "state.db")
    e = engine(runbook(RB), clock, tmp_path, store=open_store(db))
    run_id = e.start(Options())
    with pytest.raises(ApprovalPending):
        e.execute()
    return db, run_id


def _resumed(db: str, run_id: str, clock: FakeClock, tmp_path: Path) -> Engine:
    store = open_store(db)
    e = engine(runbook(RB), clock, tmp_path, store=store,
               gate=Gate(wait=True, operator="carol@ops"))
    attach(e, store.get_run(run_id))
    return e


def test_an_approval_after_its_deadline_does_not_proceed(clock: FakeClock,
                                                         tmp_path: Path) -> None:
    db, run_id = _pending(clock, tmp_path)
    clock.advance(50 * 60)  # 20:50 UTC; the deadline was 20:45 UTC (22:00+01:00 - 15m)
    approve(db, run_id, "ok", "bob", clock)
    e = _resumed(db, run_id, clock, tmp_path)
    with pytest.raises(GoNoGoRefused) as err:
        resume(e, Options())
    assert str(err.value) == (
        "approval 'ok' by bob came at 2026-11-28T21:50:00+01:00, after its deadline "
        "2026-11-28T21:45:00+01:00; a late approval does not proceed: undo with: runbook "
        f"rollback {run_id}")
    rows = e.store.steps(run_id)
    assert rows["ok"].state == "pending" and "stop" not in rows
    (decision,) = e.store.get_run(run_id).meta["decisions"]
    assert decision["kind"] == "approval_deadline" and decision["verdict"] == "refused"
    assert decision["approval"]["by"] == "bob"


def test_an_approval_in_time_proceeds_and_is_reported(clock: FakeClock,
                                                      tmp_path: Path) -> None:
    db, run_id = _pending(clock, tmp_path)
    clock.advance(40 * 60)
    approve(db, run_id, "ok", "bob", clock)
    e = _resumed(db, run_id, clock, tmp_path)
    assert resume(e, Options()) == "succeeded"
    report = run_report(e.store, run_id, registry())
    assert report["approvals"] == [{"by": "bob", "at": "2026-11-28T20:40:00.000000+00:00",
                                    "via": "cli", "step": "ok", "state": "succeeded"}]
    # the downtime step waited for the window, after the approval
    assert e.store.steps(run_id)["stop"].started_at == "2026-11-28T21:00:00.000000+00:00"


def test_no_approval_by_the_deadline_stops_the_run(clock: FakeClock, tmp_path: Path) -> None:
    clock.advance(50 * 60)
    e = engine(runbook(RB), clock, tmp_path)
    run_id = e.start(Options())
    with pytest.raises(GoNoGoRefused) as err:
        e.execute()
    assert str(err.value) == (
        "approval 'ok' missed its deadline 2026-11-28T21:45:00+01:00; a late approval does "
        f"not proceed: undo with: runbook rollback {run_id}")


def test_a_late_answer_on_the_terminal_stops_before_the_next_step(
        clock: FakeClock, tmp_path: Path) -> None:
    clock.advance(30 * 60)  # 20:30 UTC: 15 minutes before the deadline

    def slow_operator(prompt: str) -> bool:
        clock.advance(20 * 60)  # answers at 20:50 UTC
        return True

    e = engine(runbook(RB), clock, tmp_path)
    e.ask = slow_operator
    run_id = e.start(Options())
    with pytest.raises(GoNoGoRefused) as err:
        e.execute()
    assert str(err.value) == (
        f"approval 'ok' by {getpass.getuser()} came at 2026-11-28T21:50:00+01:00, after its "
        "deadline 2026-11-28T21:45:00+01:00; a late approval does not proceed: undo with: "
        f"runbook rollback {run_id}")
    assert "stop" not in e.store.steps(run_id)


PONR = """
runbook: ponr
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
  rollback_reserve: 30m
steps:
  - id: stop
    uses: test.timed
    phase: downtime
    estimate: 10m
  - id: ok
    uses: approve
    needs: [stop]
    with: {prompt: "Switch?"}
    deadline: {before: point_of_no_return, minus: 10m}
  - id: switch
    uses: test.timed
    needs: [ok]
    estimate: 5m
    rollback: none
    point_of_no_return: true
"""


def test_a_deadline_before_the_point_of_no_return(clock: FakeClock, tmp_path: Path) -> None:
    e = engine(runbook(PONR), clock, tmp_path)
    e.start(Options())
    # window end 23:00 UTC - reserve 30m - switch 5m - rollback (stop 10m) = 22:15 UTC is
    # the last moment to pass the point of no return; the approval is due 10m before
    assert e.gate.deadline(e, e.runbook.step("ok")) == at("2026-11-28T22:05:00+00:00")


def test_deadline_mistakes_are_input_errors_located_in_the_file() -> None:
    rb = runbook("""
runbook: bad
window: {start: "2026-11-28T22:00:00+01:00", duration: 1h}
steps:
  - id: a
    uses: test.timed
    deadline: {before: window_end}
  - id: b
    uses: approve
    with: {prompt: "?"}
    deadline: {before: lunch, minus: soon, extra: 1}
  - id: c
    uses: approve
    with: {prompt: "?"}
    deadline: {before: point_of_no_return}
""")
    assert [str(p) for p in check_deadlines(rb)] == [
        "move.yml:7:15: step 'a': deadline: only 'approve' steps can carry a deadline",
        "move.yml:11:15: step 'b': deadline: unknown key 'extra' (use 'before' and 'minus')",
        ("move.yml:11:15: step 'b': deadline: 'before' must be one of window_start, "
        "window_end, point_of_no_return, got 'lunch'"),
        ("move.yml:11:15: step 'b': deadline: 'minus' must be a duration like '30s', '10m' or "
        "'1h30m', got 'soon'"),
        "move.yml:15:15: step 'c': deadline: no step is marked point_of_no_return",
    ]
