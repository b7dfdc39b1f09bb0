"""A rollback costs nothing for steps that have nothing to undo."""

from __future__ import annotations

from datetime import datetime, timezone

from runbook.engine.forecast import Inputs, rollback_seconds
from runbook.loader.validate import parse_runbook

TEXT = """
runbook: undo-cost
window: {start: "2026-11-28T22:00:00+00:00", duration: 2h}
steps:
  - {id: look, uses: test.look, estimate: 5m, with: {}}
  - {id: change, uses: test.change, estimate: 3m, with: {}, needs: [look]}
  - {id: keep, uses: test.change, estimate: 7m, with: {}, needs: [change], rollback: none}
"""


def test_read_only_types_and_rollback_none_cost_nothing() -> None:
    from runbook.api import Action, Plan, Result, Step
    from runbook.registry import Registry

    class Look(Step):  # type: ignore[type-arg]
        def plan(self, params, facts):  # type: ignore[no-untyped-def]
            return Plan.of(Action.read("look"))

        def apply(self, ctx, params, plan):  # type: ignore[no-untyped-def]
            return Result(changed=False)

    class Change(Look):
        def revert(self, ctx, params, record):  # type: ignore[no-untyped-def]
            return None

    reg = Registry()
    reg.register("test.look", Look)
    reg.register("test.change", Change)
    runbook = parse_runbook(TEXT, "undo.yml", registry=reg)
    now = datetime(2026, 11, 28, 22, tzinfo=timezone.utc)
    ids = ["look", "change", "keep"]
    every = rollback_seconds(runbook, Inputs(now=now, no_undo=frozenset()), ids)
    assert every == 5 * 60 + 3 * 60  # 'keep' has rollback: none
    known = rollback_seconds(runbook, Inputs(now=now, no_undo=frozenset({"test.look"})), ids)
    assert known == 3 * 60
