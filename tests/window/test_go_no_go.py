"""Go/no-go through the engine: a refused run with its arithmetic printed word for word,
one that barely fits, --force recorded with who/when/why, and a second check at the
point of no return after a step ran long."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.clock import FakeClock
from runbook.engine.gate import Gate
from runbook.engine.runner import Options
from runbook.errors import GoNoGoRefused
from runbook.store.base import RunRow, StepRow, Store, open_store
from tests.window.kit import Recorder, at, engine, follow_clock, runbook

MOVE = """
runbook: move
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: {length}
  rollback_reserve: 30m
steps:
  - id: stop
    uses: test.timed
    phase: downtime
    estimate: 20m
  - id: sync
    uses: test.timed
    phase: downtime
    needs: [stop]
    estimate: 15m
    for_each: [a, b, c]
    max_parallel: 2
  - id: switch
    uses: test.timed
    needs: [sync]
    estimate: 5m
    rollback: none
    point_of_no_return: true
"""

# By hand: the critical path is stop 20m + sync 2 waves x 15m (three items, two at a
# time) + switch 5m = 55m; a rollback reverts stop (20m) and three sync items one by one
# (45m), switch has rollback: none, so 1h05m; needed 2h00m.
ARITHMETIC = """\
forecast before the first downtime step 'stop', at 2026-11-28T22:00:00+01:00:
  remaining critical path        55m  stop 20m (estimate) -> sync 30m (estimate, 15m x 2) \
-> switch 5m (estimate)
+ rollback of every step       1h05m
= needed                       2h00m
  window left                  {left}  (until {end})
- rollback reserve               30m
= usable                       {usable}
  {verdict}"""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock(at("2026-11-28T21:00:00+00:00"))  # the window's first instant
    follow_clock(monkeypatch, c)
    return c


def test_a_run_that_does_not_fit_is_refused_with_the_arithmetic(
        clock: FakeClock, tmp_path: Path) -> None:
    e = engine(runbook(MOVE.format(length="2h")), clock, tmp_path)
    run_id = e.start(Options())
    with pytest.raises(GoNoGoRefused) as err:
        e.execute()
    assert str(err.value) == (
        "no-go before the first downtime step 'stop': the rest of the run plus a rollback "
        "does not fit in the window\n"
        + ARITHMETIC.format(left="2h00m", end="2026-11-29T00:00:00+01:00", usable="1h30m",
                            verdict="DOES NOT FIT: 30m short")
        + f"\nproceed anyway with: runbook resume {run_id} --force \"REASON\"")
    assert "stop" not in e.store.steps(run_id)
    assert e.store.get_run(run_id).state == "paused"
    (decision,) = e.store.get_run(run_id).meta["decisions"]
    assert decision["verdict"] == "no-go"
    assert {k: decision["forecast"][k] for k in ("remaining", "rollback", "needed", "left",
                                                 "reserve", "usable", "fits")} == {
        "remaining": 3300.0, "rollback": 3900.0, "needed": 7200.0, "left": 7200.0,
        "reserve": 1800.0, "usable": 5400.0, "fits": False}


def test_a_run_that_barely_fits_goes(clock: FakeClock, tmp_path: Path) -> None:
    rec = Recorder()
    e = engine(runbook(MOVE.format(length="2h30m")), clock, tmp_path, emit=rec)
    run_id = e.start(Options())
    assert e.execute() == "succeeded"
    first = rec.messages("decision")[0]
    assert first == ARITHMETIC.format(left="2h30m", end="2026-11-29T00:30:00+01:00",
                                      usable="2h00m", verdict="fits with 0s to spare") \
        + "\ngo: proceeding with 'stop'"
    verdicts = [(d["step"], d["verdict"]) for d in e.store.get_run(run_id).meta["decisions"]]
    assert verdicts == [("stop", "go"), ("switch", "go")]


def test_force_proceeds_and_records_who_when_and_why(clock: FakeClock, tmp_path: Path) -> None:
    rec = Recorder()
    gate = Gate(force="the customer agreed to a longer outage", operator="alice@ops")
    e = engine(runbook(MOVE.format(length="2h")), clock, tmp_path, gate=gate, emit=rec)
    run_id = e.start(Options())
    assert e.execute() == "succeeded"
    first = e.store.get_run(run_id).meta["decisions"][0]
    assert first["verdict"] == "forced"
    assert first["forced"] == {"by": "alice@ops", "at": "2026-11-28T21:00:00+00:00",
                               "reason": "the customer agreed to a longer outage"}
    assert rec.messages("decision")[0].endswith(
        "DOES NOT FIT: 30m short\nforced by alice@ops: the customer agreed to a longer outage")
    events = [ev for ev in e.store.events(run_id) if ev.kind == "go_no_go"]
    assert events[0].key == "stop" and events[0].detail["verdict"] == "forced"


LONG = """
runbook: long
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
  rollback_reserve: 15m
# copy may be seen overrunning while it runs; this test is about the check that follows
on_window_overrun: continue
steps:
  - id: stop
    uses: test.timed
    phase: downtime
    estimate: 10m
    with: {seconds: 600}
  - id: copy
    uses: test.timed
    phase: downtime
    needs: [stop]
    estimate: 20m
    with: {seconds: 5400}
  - id: switch
    uses: test.timed
    needs: [copy]
    estimate: 5m
    rollback: none
    point_of_no_return: true
"""


def test_the_point_of_no_return_is_refused_after_a_step_ran_long(
        clock: FakeClock, tmp_path: Path) -> None:
    e = engine(runbook(LONG), clock, tmp_path)
    run_id = e.start(Options())
    with pytest.raises(GoNoGoRefused) as err:
        e.execute()
    # at 21:00 UTC: 35m + rollback 30m = 1h05m of 1h45m usable: go. copy then took 1h30m,
    # so at 22:40 UTC: 5m + 30m = 35m needed, 20m left - 15m reserve = 5m usable
    assert str(err.value) == (
        "no-go at the point of no return 'switch': the rest of the run plus a rollback does "
        "not fit in the window\n"
        "forecast at the point of no return 'switch', at 2026-11-28T23:40:00+01:00:\n"
        "  remaining critical path         5m  switch 5m (estimate)\n"
        "+ rollback of every step         30m\n"
        "= needed                         35m\n"
        "  window left                    20m  (until 2026-11-29T00:00:00+01:00)\n"
        "- rollback reserve               15m\n"
        "= usable                          5m\n"
        "  DOES NOT FIT: 30m short\n"
        f"proceed anyway with: runbook resume {run_id} --force \"REASON\"")
    verdicts = [(d["step"], d["verdict"]) for d in e.store.get_run(run_id).meta["decisions"]
                if d["kind"] == "go_no_go"]
    assert verdicts == [("stop", "go"), ("switch", "no-go")]
    assert "switch" not in e.store.steps(run_id)


def _past_run(store: Store, run_id: str, runbook_name: str, kind: str,
              steps: dict[str, tuple[str, str, str]], parents: tuple[str, ...] = ()) -> None:
    """A finished run as the store keeps it: state and stored start/end per step."""
    store.create_run(RunRow(run_id=run_id, runbook=runbook_name, path="move.yml", digest="x",
                            text="", kind=kind, state="succeeded", created_at="2026-11-01"))
    for key, (state, start, end) in steps.items():
        store.save_step(StepRow(run_id=run_id, key=key, step_id=key.split("[")[0],
                                state=state, started_at=start, finished_at=end,
                                info={"parent": True, "items": [1, 2]} if key in parents
                                else {}),
                        event="seed", from_state=None)


def test_history_of_the_same_runbook_replaces_estimates(clock: FakeClock,
                                                        tmp_path: Path) -> None:
    store = open_store("memory://")
    day = "2026-11-0{}T10:{:02d}:00+00:00"
    # two rehearsals of this runbook: stop took 12m and 16m, sync items 10m..20m
    _past_run(store, "r1", "move", "rehearsal", {
        "stop": ("succeeded", day.format(1, 0), day.format(1, 12)),
        "sync[0]": ("succeeded", day.format(1, 0), day.format(1, 10)),
        "sync[1]": ("reverted", day.format(1, 0), day.format(1, 20))})
    _past_run(store, "r2", "move", "rehearsal", {
        "stop": ("succeeded", day.format(2, 0), day.format(2, 16)),
        "sync": ("succeeded", day.format(2, 0), day.format(2, 59))},  # all items, not one
        parents=("sync",))
    # another runbook's 'stop' and a failed attempt say nothing about this one
    _past_run(store, "x1", "other", "run", {"stop": ("succeeded", day.format(3, 0),
                                                     day.format(3, 59))})
    _past_run(store, "r3", "move", "run", {"stop": ("failed", day.format(4, 0),
                                                    day.format(4, 59))})
    rec = Recorder()
    e = engine(runbook(MOVE.format(length="3h")), clock, tmp_path, store=store, emit=rec)
    e.start(Options())
    assert e.execute() == "succeeded"
    lines = rec.messages("decision")[0].splitlines()
    # stop: p90 of [12m, 16m] = 16m; sync: p90 of [10m, 20m] = 20m x 2 waves
    assert lines[1] == ("  remaining critical path      1h01m  stop 16m (p90 of 2 runs) -> "
                        "sync 40m (p90 of 2 runs, 20m x 2) -> switch 5m (estimate)")
