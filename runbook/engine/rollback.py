"""Rollback: walk back over what actually ran, newest first, using stored records.

Each revert is checkpointed (``reverting`` is durable before revert is called), so a
crash during rollback resumes it; revert must be idempotent. A failed revert stops the
rollback and says what a human must check.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook.engine.render import item_of
from runbook.errors import RevertFailed, RunbookError, StepError
from runbook.model import StepSpec
from runbook.store.base import StepRow

if TYPE_CHECKING:
    from runbook.engine.runner import Engine


@dataclass
class RollbackOutcome:
    reverted: list[str] = field(default_factory=list)
    not_undone: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    stopped_at: str | None = None  # the point of no return the rollback did not pass


def candidates(rows: dict[str, StepRow], to: str | None = None) -> list[StepRow]:
    """Rows whose work exists and may need undoing, newest first.

    Order comes from the store's event sequence, not from timestamps: two steps can
    finish within the same clock tick, but never at the same point of the event log."""
    done = [r for r in rows.values()
            if not r.info.get("parent")
            and (r.state in ("succeeded", "reverting", "revert_failed")
                 or (r.state in ("failed", "cancelled") and r.record))]
    done.sort(key=lambda r: r.seq, reverse=True)
    if to is not None:
        anchor = [r for r in rows.values() if r.step_id == to or r.key == to]
        if anchor:
            cutoff = max(r.seq for r in anchor)
            done = [r for r in done if r.seq > cutoff and r.step_id != to]
    return done


class Rollback:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    def run(self, *, reason: str, to: str | None = None,
            through_point_of_no_return: bool = False) -> RollbackOutcome:
        e = self.engine
        e._rows = e.store.steps(e.run_id)
        passed = self._passed_point_of_no_return()
        stop_at = None
        if passed is not None and not through_point_of_no_return and to is None:
            # Past the point of no return, customers are on the new side: undoing the
            # switch is a decision for a human (a new run), not an automatic reaction.
            to = stop_at = passed
        e._run_transition("roll_back", {"reason": reason, "to": to})
        e.emit("rollback_started", reason=reason)
        if stop_at is not None:
            e.emit("notice", message=f"rollback stops at the point of no return '{stop_at}': "
                   "it and what ran before it stay; to undo them too, run: runbook rollback "
                   f"{e.run_id} --through-point-of-no-return")
        outcome = RollbackOutcome(stopped_at=stop_at)
        by_id = e.runbook.by_id
        for row in candidates(e._rows, to):
            spec = by_id.get(row.step_id)
            if row.state == "reverted":
                continue
            if spec is None:
                outcome.not_undone.append((row.key, "the step is no longer in the runbook"))
                continue
            why = self._not_undoable(spec, row)
            if why:
                outcome.not_undone.append((row.key, why))
                e.store.add_event(e.run_id, row.key, "not_undone", {"why": why})
                e.emit("step_not_undone", key=row.key, why=why)
                continue
            self._revert(spec, row)
            outcome.reverted.append(row.key)
        e._run_transition("rolled_back", {"reverted": outcome.reverted,
                                          "not_undone": outcome.not_undone},
                          finished_at=e.stamp())
        e._release_targets()
        e.emit("rollback_finished", reverted=outcome.reverted, not_undone=outcome.not_undone)
        return outcome

    def _passed_point_of_no_return(self) -> str | None:
        """The newest point-of-no-return step that finished, if any."""
        done = [r for r in self.engine._rows.values()
                if r.state == "succeeded" and r.step_id in self.engine.runbook.by_id
                and self.engine.runbook.by_id[r.step_id].point_of_no_return]
        if not done:
            return None
        return max(done, key=lambda r: r.seq).step_id

    def _not_undoable(self, spec: StepSpec, row: StepRow) -> str | None:
        if spec.rollback.mode == "none":
            return "rollback: none"
        if row.state == "succeeded" and row.info.get("changed") is False:
            return "nothing was changed"
        if spec.rollback.mode == "step":
            return None
        try:
            prepared = self.engine.prepare(spec, self._item(spec, row))
        except RunbookError as exc:
            return f"cannot prepare its revert: {exc}"
        if not prepared.step.can_revert(prepared.params):
            try:
                why = prepared.step.revert_plan(prepared.params, row.record).reason
            except Exception:
                why = ""
            return why or f"step type '{spec.uses}' cannot undo its work"
        return None

    def _item(self, spec: StepSpec, row: StepRow) -> Any:
        return item_of(self.engine._rows, spec.id, row.key)

    def _revert(self, spec: StepSpec, row: StepRow) -> None:
        e = self.engine
        item = self._item(spec, row)
        if row.state != "reverting":
            e._transition(row, "revert", detail={"from": row.state})
        elif row.state == "reverting":
            e.store.add_event(e.run_id, row.key, "revert_resumed", {})
        e.emit("step_reverting", key=row.key)
        started = time.monotonic()
        try:
            if spec.rollback.mode == "step":
                prepared = e.prepare(spec, item, uses=spec.rollback.uses,
                                     raw_with=spec.rollback.with_)
                ctx = e.context(row.key, spec, threading.Event(), item)
                plan = prepared.step.plan(prepared.params, prepared.step.observe(
                    ctx, prepared.params))
                prepared.step.apply(ctx, prepared.params, plan)
            else:
                prepared = e.prepare(spec, item)
                ctx = e.context(row.key, spec, threading.Event(), item)
                prepared.step.revert(ctx, prepared.params, row.record)
        except Exception as exc:
            message = e.redactor.text(str(exc))
            try:
                check = "; ".join(a.description for a in prepared.step.revert_plan(
                    prepared.params, row.record).actions)
            except Exception:
                check = f"undo {spec.uses}"
            e._transition(row, "revert_fail", error={"type": type(exc).__name__,
                                                     "code": getattr(exc, "code", "E999"),
                                                     "message": message})
            e._run_transition("rollback_fail", {"step": row.key, "message": message},
                              finished_at=e.stamp())
            e.emit("step_revert_failed", key=row.key, message=message)
            raise RevertFailed(
                f"revert of step '{row.key}' ({spec.uses}) failed: {message}. A human must "
                f"check: {check}. When fixed, continue with: runbook rollback {e.run_id}"
            ) from (exc if isinstance(exc, StepError) else None)
        seconds = time.monotonic() - started
        e._transition(row, "reverted", info=dict(row.info, revert_seconds=seconds,
                                                 reverted_at=e.stamp()))
        e.emit("step_reverted", key=row.key, seconds=seconds)
