"""``wait``: let time pass (a TTL to expire, a cache to drain)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbook.api import Action, Duration, Plan, Result, Step, StepContext, param
from runbook.duration import format_duration


@dataclass(frozen=True)
class WaitParams:
    duration: Duration = param(doc="how long to wait")
    reason: str = param("", doc="shown in the plan and the log")


class Wait(Step[WaitParams]):
    """Let time pass: a DNS TTL to expire, caches to drain."""

    Params = WaitParams
    idempotent = True
    outputs = ("seconds",)

    def plan(self, params: WaitParams, facts: dict[str, Any] | None) -> Plan:
        why = f" ({params.reason})" if params.reason else ""
        return Plan.of(Action.read(f"wait {format_duration(params.duration)}{why}"))

    def apply(self, ctx: StepContext, params: WaitParams, plan: Plan) -> Result:
        ctx.sleep(params.duration)
        return Result(outputs={"seconds": float(params.duration)}, changed=False)

    def estimate(self, params: WaitParams) -> float | None:
        return float(params.duration)
