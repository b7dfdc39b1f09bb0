"""Runs with known stored timings, made by the real engine under a fake clock whose time
the store's timestamps follow. Each stop and resume uses a fresh Engine and Gate, as a
new process would."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.clock import FakeClock
from runbook.engine.gate import Gate
from runbook.engine.runner import Engine, Options, RunFailed, attach, resume
from runbook.errors import ApprovalPending, WindowClosed
from runbook.store.base import open_store
from tests.window.kit import at, engine, follow_clock, runbook

MOVE = """
runbook: move
description: a move in three sittings
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
  rollback_reserve: 30m
steps:
  - id: prepare
    uses: wait
    estimate: 8m
    with: {duration: 10m}
  - id: stop
    uses: wait
    phase: downtime
    needs: [prepare]
    estimate: 5m
    with: {duration: 5m}
  - id: sync
    uses: wait
    phase: downtime
    needs: [stop]
    estimate: 20m
    with: {duration: 25m}
  - id: ok
    uses: approve
    needs: [sync]
    point_of_no_return: true
    with: {prompt: "Switch the gateway?"}
  - id: switch
    uses: wait
    phase: downtime
    needs: [ok]
    estimate: 2m
    with: {duration: 2m}
"""


def _again(db: str, run_id: str, text: str, clock: FakeClock, tmp_path: Path,
           operator: str) -> Engine:
    store = open_store(db)
    e = engine(runbook(text), clock, tmp_path, store=store, gate=Gate(operator=operator))
    attach(e, store.get_run(run_id))
    return e


def resumed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                text: str = MOVE) -> tuple[str, str, FakeClock]:
    """20:00 prepare (10m), stops: the window opens at 21:00 UTC. 21:00 stop (5m), sync
    (25m), stops at the approval. bob approves at 21:40; ok and switch (2m) finish 21:42."""
    clock = FakeClock(at("2026-11-28T20:00:00+00:00"))
    follow_clock(monkeypatch, clock)
    db = str(tmp_path / "state.db")
    first = engine(runbook(text), clock, tmp_path, store=open_store(db),
                   gate=Gate(operator="alice@ops"))
    run_id = first.start(Options())
    with pytest.raises(WindowClosed):
        first.execute()
    clock.advance(50 * 60)
    with pytest.raises(ApprovalPending):
        resume(_again(db, run_id, text, clock, tmp_path, "alice@ops"), Options())
    clock.advance(10 * 60)
    store = open_store(db)
    row = store.steps(run_id)["ok"]
    row.info = dict(row.info, approval={"by": "bob", "at": clock.now().isoformat(),
                                        "via": "cli"})
    store.save_step(row, event="approved", from_state=row.state, detail={"by": "bob"})
    last = _again(db, run_id, text, clock, tmp_path, "carol@ops")
    assert resume(last, Options()) == "succeeded"
    return db, run_id, clock


FAILING = """
runbook: failing
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
  rollback_reserve: 30m
steps:
  - id: stop
    uses: test.timed
    phase: downtime
    estimate: 5m
    with: {seconds: 300, revert_seconds: 120}
  - id: sync
    uses: test.timed
    phase: downtime
    needs: [stop]
    estimate: 10m
    with: {seconds: 600, revert_seconds: 240}
  - id: check
    uses: test.timed
    phase: downtime
    needs: [sync]
    estimate: 1m
    with: {seconds: 60, fail: true}
"""


def rolled_back_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """21:00 stop (5m), sync (10m), check fails at 21:16; revert sync (4m), stop (2m)."""
    clock = FakeClock(at("2026-11-28T21:00:00+00:00"))
    follow_clock(monkeypatch, clock)
    db = str(tmp_path / "failing.db")
    e = engine(runbook(FAILING), clock, tmp_path, store=open_store(db))
    run_id = e.start(Options())
    with pytest.raises(RunFailed):
        e.execute()
    return db, run_id
