"""Helpers for window, forecast and report tests: a step type that lets fake time pass,
an engine factory, and stored timestamps that follow the fake clock."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runbook.api import Action, Plan, Result, Step, StepContext, StepFailed, param
from runbook.clock import FakeClock
from runbook.engine.gate import Gate
from runbook.engine.runner import Engine
from runbook.errors import StepCancelled
from runbook.loader.validate import parse_runbook
from runbook.model import Runbook
from runbook.registry import Registry
from runbook.store.base import Store, open_store

#: set by a test when a step that holds may finish (see Timed.hold)
RELEASE = threading.Event()


@dataclass(frozen=True)
class TimedParams:
    seconds: float = param(0.0, doc="fake seconds apply takes")
    revert_seconds: float = param(0.0, doc="fake seconds revert takes")
    fail: bool = param(False, doc="fail after the time has passed")
    hold: bool = param(False, doc="after the time has passed, wait for RELEASE")


class Timed(Step[TimedParams]):
    """Lets fake time pass in apply and revert, so stored timestamps have known spans."""

    Params = TimedParams

    def plan(self, params: TimedParams, facts: dict[str, Any] | None) -> Plan:
        return Plan.of(Action.change(f"take {params.seconds}s"))

    def apply(self, ctx: StepContext, params: TimedParams, plan: Plan) -> Result:
        ctx.clock.sleep(params.seconds)
        if params.hold:
            # the driver must see this step running after the time passed: wait until
            # the test saw what it waits for (a safety limit keeps a broken test finite)
            for _ in range(1000):
                if RELEASE.wait(0.01) or ctx.cancelled.is_set():
                    break
            if ctx.cancelled.is_set():
                raise StepCancelled(f"step '{ctx.step_id}' was cancelled")
        if params.fail:
            raise StepFailed(f"step '{ctx.step_id}' failed on purpose")
        return Result(outputs={}, record={"did": ctx.step_id})

    def revert(self, ctx: StepContext, params: TimedParams, record: dict[str, Any]) -> None:
        ctx.clock.sleep(params.revert_seconds)


def registry() -> Registry:
    reg = Registry()
    reg.register("test.timed", Timed)
    return reg


def runbook(text: str, name: str = "move.yml") -> Runbook:
    return parse_runbook(text, name, registry=registry())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Recorder:
    """Collects emitted events; releases held steps when an overrun notice arrives."""

    def __init__(self, release: bool = True) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.release = release

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))
        if self.release and event == "notice" and str(data.get("message", "")).startswith("window overrun"):
            RELEASE.set()

    def messages(self, event: str) -> list[str]:
        return [str(d.get("message")) for e, d in self.events if e == event]

    def kinds(self) -> list[str]:
        return [e for e, _ in self.events]


def engine(rb: Runbook, clock: FakeClock, tmp_path: Path, *, store: Store | None = None,
           gate: Gate | None = None, emit: Recorder | None = None) -> Engine:
    RELEASE.clear()
    return Engine(store or open_store("memory://"), rb, run_root=tmp_path, clock=clock,
                  registry=registry(), gate=gate or Gate(operator="alice@ops"),
                  emit=emit or Recorder())


def follow_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """Stored timestamps come from the fake clock, so spans in the store are known."""
    def now() -> str:
        return clock.now().astimezone(UTC).isoformat(timespec="microseconds")
    # the engine stamps from its own clock; the store's event rows use wall time
    monkeypatch.setattr("runbook.store.sql.utcnow", now)
