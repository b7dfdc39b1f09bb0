"""``approve``: a manual gate. Answered by ``runbook approve RUN STEP`` or on the terminal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbook.api import Action, Plan, Result, Step, StepContext, param
from runbook.errors import ApprovalPending


@dataclass(frozen=True)
class ApproveParams:
    prompt: str = param(doc="the question put to the operator")


class Approve(Step[ApproveParams]):
    """A manual gate: waits for ``runbook approve RUN STEP`` (or a yes on the terminal)."""

    Params = ApproveParams
    idempotent = True
    outputs = ("approved_by", "approved_at")

    def plan(self, params: ApproveParams, facts: dict[str, Any] | None) -> Plan:
        return Plan.of(Action.read(f"ask for approval: {params.prompt}"))

    def apply(self, ctx: StepContext, params: ApproveParams, plan: Plan) -> Result:
        if ctx.approval is None and ctx.ask is not None and ctx.ask(params.prompt):
            ctx.approval = {"by": _whoami(), "at": ctx.clock.now().isoformat(), "via": "terminal"}
        if ctx.approval is None:
            raise ApprovalPending(
                f"step '{ctx.step_id}' waits for approval ({params.prompt}); "
                f"approve with: runbook approve {ctx.run_id} {ctx.step_id}"
            )
        return Result(outputs={"approved_by": ctx.approval["by"],
                               "approved_at": ctx.approval["at"]}, changed=False)


def _whoami() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
