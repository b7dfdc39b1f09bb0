"""One step in flight: its attempts with retries, how the result is settled, and its
timeout. The driver (runner.py) calls these; the worker side runs in a pool thread."""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook.engine.render import Prepared
from runbook.errors import StepCancelled, StepError, StepFailed, StepTimedOut, Stopped
from runbook.model import StepSpec
from runbook.step import Plan, Result

if TYPE_CHECKING:
    from runbook.engine.runner import Engine

log = logging.getLogger("runbook.engine")


@dataclass
class Inflight:
    key: str
    spec: StepSpec
    cancel: threading.Event
    started: float
    deadline: float | None
    timed_out: bool = False
    abandoned: bool = False
    partial: dict[str, Any] = field(default_factory=dict)


def work(engine: Engine, inflight: Inflight, prepared: Prepared, item: Any) -> None:
    spec = inflight.spec
    step, params = prepared.step, prepared.params
    attempts = spec.retries.attempts
    for attempt in range(1, attempts + 1):
        ctx = engine.context(inflight.key, spec, inflight.cancel, item, attempt)
        try:
            facts = step.observe(ctx, params)
            plan = step.plan(params, facts)
            result = step.apply(ctx, params, plan)
            if not plan.empty and step.verify(ctx, params, result) is False:
                raise StepFailed(f"step '{inflight.key}': verify found the work "
                                 "not done after apply")
            engine._messages.put(("done", inflight.key, (result, plan, attempt)))
            return
        except Stopped as exc:
            engine._messages.put(("paused", inflight.key, exc))
            return
        except StepCancelled as exc:
            engine._messages.put(("cancelled", inflight.key, (exc, attempt)))
            return
        except Exception as exc:  # step code may raise anything; it becomes data
            if not isinstance(exc, StepError):
                log.debug("step %s raised\n%s", inflight.key, traceback.format_exc())
            if attempt < attempts and not inflight.cancel.is_set():
                pause = spec.retries.pause(attempt)
                engine.store.add_event(engine.run_id, inflight.key, "retry", engine.redactor.data(
                    {"attempt": attempt, "error": str(exc), "pause": pause}))
                engine.emit("step_retry", key=inflight.key, attempt=attempt,
                          message=str(exc), pause=pause)
                if not engine.clock.sleep(pause, inflight.cancel):
                    engine._messages.put(("cancelled", inflight.key, (
                        StepCancelled(f"step '{inflight.key}' stopped while waiting "
                                      "to retry"), attempt)))
                    return
                continue
            engine._messages.put(("failed", inflight.key, (exc, attempt)))
            return

def settle(engine: Engine, inflight: Inflight, kind: str, payload: Any) -> str:
    row = engine._rows[inflight.key]
    now = engine.stamp()
    elapsed = engine.clock.monotonic() - inflight.started
    if kind == "done":
        result, plan, attempt = payload
        assert isinstance(result, Result) and isinstance(plan, Plan)
        info = dict(row.info, changed=result.changed and not plan.empty,
                    plan=plan.to_dict(), attempts=attempt, seconds=elapsed)
        engine._transition(row, "succeed", finished_at=now, outputs=result.outputs,
                         record=result.record or row.record, info=info)
        engine.emit("step_succeeded", key=inflight.key, seconds=elapsed,
                  changed=info["changed"])
        return "succeeded"
    if kind == "paused":
        engine._transition(row, "pause", detail={"reason": str(payload)})
        engine.emit("step_paused", key=inflight.key, message=str(payload))
        return "paused"
    exc, attempt = payload
    if kind == "cancelled" and inflight.timed_out:
        exc = StepTimedOut(f"step '{inflight.key}' ran past its timeout of "
                           f"{inflight.spec.timeout:.0f}s and was stopped")
        kind = "failed"
    record = getattr(exc, "record", None) or row.record
    trigger = "fail" if kind == "failed" else "cancel"
    engine._transition(row, trigger, finished_at=now, error=error_data(exc), record=record,
                     info=dict(row.info, attempts=attempt, seconds=elapsed))
    engine.emit("step_failed" if trigger == "fail" else "step_cancelled", key=inflight.key,
              message=engine.redactor.text(str(exc)), seconds=elapsed)
    return "failed" if trigger == "fail" else "cancelled"


def next_deadline(engine: Engine, running: dict[str, Inflight]) -> float:
    wait = 0.5
    now = engine.clock.monotonic()
    for inflight in running.values():
        if inflight.deadline is not None:
            target = inflight.deadline + (engine.grace if inflight.timed_out else 0)
            wait = min(wait, max(0.01, target - now))
    return wait

def check_timeouts(engine: Engine, running: dict[str, Inflight]) -> None:
    now = engine.clock.monotonic()
    for key, inflight in list(running.items()):
        if inflight.deadline is None or now < inflight.deadline:
            continue
        if not inflight.timed_out:
            inflight.timed_out = True
            inflight.cancel.set()
            engine.emit("step_timeout", key=key, timeout=inflight.spec.timeout)
        elif now >= inflight.deadline + engine.grace:
            # the step ignores cancellation; stop waiting for it and record why
            inflight.abandoned = True
            running.pop(key)
            engine._messages.put(("failed", key, (StepTimedOut(
                f"step '{key}' ran past its timeout of {inflight.spec.timeout:.0f}s and did "
                f"not stop within {engine.grace:.0f}s; it was abandoned: "
                "check what it was doing"),
                1)))
            # re-queue under a fresh record so _drive settles it
            running[key] = Inflight(key, inflight.spec, inflight.cancel, inflight.started,
                                    None, timed_out=False)



def error_data(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "code": getattr(exc, "code", "E999"),
            "message": str(exc) or type(exc).__name__}
