"""Forecast arithmetic against cases computed by hand (no engine, no clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runbook.engine.forecast import (
    Inputs,
    expected_times,
    forecast,
    hms,
    latest_start,
    p90,
    waves,
)
from tests.window.kit import at, runbook

RB = """
runbook: f
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 3h
  rollback_reserve: 20m
max_parallel: 4
steps:
  - id: freeze
    uses: test.timed
    phase: downtime
    estimate: 5m
  - id: dump
    uses: test.timed
    phase: downtime
    needs: [freeze]
    estimate: 30m
  - id: disks
    uses: test.timed
    phase: downtime
    needs: [freeze]
    estimate: 10m
    for_each: [d1, d2, d3, d4, d5]
  - id: switch
    uses: test.timed
    needs: [dump, disks]
    estimate: 4m
    rollback: none
    point_of_no_return: true
  - id: cleanup
    uses: test.timed
    phase: after
    needs: [switch]
    estimate: 1h
"""
OPEN = at("2026-11-28T21:00:00+00:00")


def test_p90_is_the_nearest_rank_value() -> None:
    assert p90([5.0]) == 5.0
    assert p90([float(m) for m in range(10, 20)]) == 18.0  # 9th of 10
    assert p90([1.0, 100.0, 2.0, 3.0]) == 100.0  # ceil(3.6) = 4th of 4
    assert p90([float(m) for m in range(1, 21)]) == 18.0  # 18th of 20


def test_for_each_runs_in_waves_bounded_by_both_parallelism_limits() -> None:
    rb = runbook(RB)
    disks = rb.step("disks")
    assert waves(disks, 5, rb.max_parallel) == 2  # 4 lanes from max_parallel: 4
    assert waves(disks, 4, rb.max_parallel) == 1
    assert waves(disks, 5, 1) == 5
    assert waves(rb.step("dump"), 99, 4) == 1  # not a for_each step


def test_hms_is_exact() -> None:
    assert [hms(0), hms(59), hms(60), hms(3599), hms(3600), hms(3661), hms(-90)] == \
        ["0s", "59s", "1m", "59m59s", "1h00m", "1h01m01s", "-1m30s"]


def test_estimates_only() -> None:
    rb = runbook(RB)
    f = forecast(rb, Inputs(now=OPEN, items={"disks": 5}), rb.windows[0], "t")
    # path: freeze 5m -> disks 2 waves x 10m = 20m vs dump 30m -> dump wins -> switch 4m;
    # cleanup is phase 'after' and does not count
    assert f.path == ["freeze", "dump", "switch"]
    assert f.remaining == (5 + 30 + 4) * 60
    # rollback: freeze 5m + dump 30m + 5 disks one by one 50m; switch has rollback: none
    # and cleanup runs after the downtime, so no failure in the window has it to undo
    assert f.rollback == (5 + 30 + 50) * 60
    assert f.left == 3 * 3600 and f.usable == 3 * 3600 - 20 * 60
    # needed 39m + 1h25m = 2h04m against 3h - 20m = 2h40m usable: 36m to spare
    assert f.needed == (39 + 85) * 60
    assert f.fits is True and f.margin == 36 * 60


def test_history_wins_over_estimates_and_a_running_step_counts_its_remainder() -> None:
    rb = runbook(RB)
    minutes = [float(m) * 60 for m in range(40, 50)]  # dump took 40..49 min before
    inputs = Inputs(now=OPEN + timedelta(minutes=15),
                    states={"freeze": "succeeded", "dump": "running", "disks": "running"},
                    elapsed={"dump": 10 * 60.0, "disks": 10 * 60.0},
                    items={"disks": 5},
                    applied={"dump": minutes, "disks": [12 * 60.0, 9 * 60.0]},
                    reverted={"dump": [7 * 60.0], "freeze": [60.0, 120.0]})
    f = forecast(rb, inputs, rb.windows[0], "t")
    # dump: p90 48m, 10m in -> 38m left; disks: p90 12m x 2 waves = 24m, 10m in -> 14m
    assert f.path == ["dump", "switch"]
    assert f.remaining == (38 + 4) * 60
    assert f.times["dump"].source == "p90 of 10 runs, remainder"
    # rollback: freeze p90 2m + dump p90 7m + disks 5 x estimate 10m (no revert history)
    assert f.rollback == (2 + 7 + 50) * 60
    assert f.left == 2 * 3600 + 45 * 60
    assert f.needed == (42 + 59) * 60
    assert f.usable == (165 - 20) * 60
    assert f.fits and f.margin == 44 * 60


def test_the_arithmetic_lines_add_up() -> None:
    rb = runbook(RB)
    f = forecast(rb, Inputs(now=OPEN, items={"disks": 5}), rb.windows[0],
                 "before the first downtime step 'freeze'")
    assert f.lines() == [
        "forecast before the first downtime step 'freeze', at 2026-11-28T22:00:00+01:00:",
        ("  remaining critical path        39m  freeze 5m (estimate) -> dump 30m (estimate) "
        "-> switch 4m (estimate)"),
        "+ rollback of every step       1h25m",
        "= needed                       2h04m",
        "  window left                  3h00m  (until 2026-11-29T01:00:00+01:00)",
        "- rollback reserve               20m",
        "= usable                       2h40m",
        "  fits with 36m to spare",
    ]


def test_latest_start_of_the_point_of_no_return() -> None:
    rb = runbook(RB)
    moment = latest_start(rb, Inputs(now=OPEN, items={"disks": 5}), rb.windows[0], "switch")
    # window end 00:00 UTC - reserve 20m - switch 4m - rollback 1h25m = 22:11 UTC
    assert moment == at("2026-11-28T22:11:00+00:00")


@pytest.mark.parametrize("values", [[], [0.0]])
def test_no_history_and_no_estimate_counts_as_zero_and_says_so(values: list[float]) -> None:
    rb = runbook("""
runbook: z
window: {start: "2026-11-28T22:00:00+01:00", duration: 1h}
steps:
  - {id: a, uses: test.timed, phase: downtime}
""")
    inputs = Inputs(now=OPEN, applied={"a": values} if values else {})
    f = forecast(rb, inputs, rb.windows[0], "t")
    assert f.needed == 0.0 and f.fits
    expected = "p90 of 1 run" if values else "no estimate"
    assert expected_times(rb, inputs)["a"].source == expected
