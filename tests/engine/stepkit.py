"""Step types for engine tests: each writes what it does to a journal file."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.api import Action, Plan, Result, Step, StepContext, StepFailed, param
from runbook.clock import Clock, FakeClock
from runbook.engine.runner import Engine, Options
from runbook.loader.validate import parse_runbook
from runbook.registry import Registry
from runbook.store.base import open_store


def journal(path: str, *entry: Any) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(list(entry)) + "\n")


def read_journal(path: Path) -> list[list[Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@dataclass(frozen=True)
class MarkParams:
    journal: str = param(doc="journal file")
    name: str = param(doc="what to write")
    fail_times: int = param(0, doc="fail this many attempts first (counted in a file)")
    hang: bool = param(False, doc="sleep until cancelled")
    ignore_cancel: bool = param(False, doc="hang without honouring cancellation")
    revert_fails: bool = param(False)


class Mark(Step[MarkParams]):
    """Writes ``apply NAME`` / ``revert NAME`` to a journal; can fail or hang on demand."""

    Params = MarkParams
    outputs = ("name", "attempt")

    def plan(self, params: MarkParams, facts: dict[str, Any] | None) -> Plan:
        return Plan.of(Action.change(f"mark {params.name}"))

    def apply(self, ctx: StepContext, params: MarkParams, plan: Plan) -> Result:
        counter = Path(params.journal + f".{params.name}.tries")
        tries = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(tries + 1))
        if tries < params.fail_times:
            raise StepFailed(f"{params.name} failed on purpose (try {tries + 1})")
        if params.hang:
            # record partial work first, as a real step does before a long operation
            ctx.checkpoint({"name": params.name, "partial": True})
            journal(params.journal, "hang", params.name)
            if params.ignore_cancel:
                time.sleep(30)
            while True:
                ctx.sleep(0.05)
        ctx.checkpoint({"name": params.name, "partial": True})
        journal(params.journal, "apply", params.name)
        return Result(outputs={"name": params.name, "attempt": ctx.attempt},
                      record={"name": params.name})

    def revert(self, ctx: StepContext, params: MarkParams, record: dict[str, Any]) -> None:
        if params.revert_fails:
            raise StepFailed(f"cannot undo {params.name}")
        journal(params.journal, "revert", record.get("name"))


@dataclass(frozen=True)
class GateParams:
    event: str = param(doc="a file that, when it exists, lets the step finish")


class WaitFile(Step[GateParams]):
    """Blocks until a file exists: lets tests hold a step in flight."""

    Params = GateParams

    def plan(self, params: GateParams, facts: dict[str, Any] | None) -> Plan:
        return Plan.of(Action.read(f"wait for {params.event}"))

    def apply(self, ctx: StepContext, params: GateParams, plan: Plan) -> Result:
        while not Path(params.event).exists():
            ctx.check_cancelled()
            time.sleep(0.01)
        return Result(changed=False)


def registry() -> Registry:
    reg = Registry()
    reg.register("test.mark", Mark)
    reg.register("test.wait_file", WaitFile)
    return reg


def make_engine(text: str, tmp: Path, *, clock: Clock | None = None,
                store: Any = None) -> Engine:
    reg = registry()
    runbook = parse_runbook(text, str(tmp / "rb.yml"), registry=reg)
    store = store or open_store(str(tmp / "state.db"))
    engine = Engine(store, runbook, run_root=tmp / "runs", clock=clock or FakeClock(),
                    registry=reg)
    engine.grace = 0.5
    return engine


def start(engine: Engine, kind: str = "run") -> str:
    return engine.start(Options(kind=kind))


