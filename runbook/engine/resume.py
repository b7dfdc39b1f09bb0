"""Resume after a crash: the store is the truth.

A step found ``running`` (or ``cancelled``) was in flight: it is re-run only when it is
idempotent; otherwise its ``verify`` decides (done → recovered, not done → re-run),
or, when verify cannot tell, the operator chooses with --rerun-interrupted or
--skip-interrupted.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from runbook.engine.render import item_of
from runbook.errors import InterruptedStep, RunbookChanged, RunbookError
from runbook.loader.validate import parse_runbook
from runbook.model import Runbook
from runbook.store.base import RunRow

if TYPE_CHECKING:
    from runbook.engine.runner import Engine, Options


def changes(old: Runbook, new: Runbook) -> list[str]:
    """A short summary of what differs between two versions of a runbook."""
    out = []
    old_steps, new_steps = old.by_id, new.by_id
    for sid in old_steps:
        if sid not in new_steps:
            out.append(f"step '{sid}' was removed")
    for sid, spec in new_steps.items():
        if sid not in old_steps:
            out.append(f"step '{sid}' was added")
        elif _shape(spec) != _shape(old_steps[sid]):
            out.append(f"step '{sid}' was changed")
    if old.vars != new.vars:
        out.append("'vars' changed")
    if old.targets != new.targets:
        out.append("'targets' changed")
    if old.windows != new.windows:
        out.append("the window changed")
    return out or ["formatting or comments only"]


def _shape(spec: Any) -> Any:
    return (spec.uses, spec.with_, spec.needs, spec.phase, spec.when, spec.timeout,
            spec.retries, spec.rollback, spec.for_each, spec.idempotent,
            spec.point_of_no_return)


def load_for_resume(run: RunRow, current: Runbook | None, accept_changes: bool) -> Runbook:
    """The runbook to continue with: the file as the run began, unless changes are accepted."""
    if current is not None and current.digest == run.digest:
        return current
    original = parse_runbook(run.text, run.path)
    if current is None:
        return original
    if not accept_changes:
        raise RunbookChanged(changes(original, current))
    return current


def settle_interrupted(engine: "Engine", options: "Options") -> None:
    """Decide, for every step that was in flight at the crash, whether it runs again."""
    undecided = []
    for row in sorted(engine._rows.values(), key=lambda r: r.seq):
        if row.state not in ("running", "cancelled") or row.info.get("parent"):
            continue
        spec = engine.runbook.by_id.get(row.step_id)
        if spec is None:
            continue
        if options.skip_interrupted:
            engine._transition(row, "skip", detail={"reason": "--skip-interrupted"},
                               finished_at=engine.stamp())
            continue
        try:
            prepared = engine.prepare(spec, item_of(engine._rows, spec.id, row.key))
        except RunbookError:
            prepared = None
        idempotent = spec.idempotent if spec.idempotent is not None else (
            prepared is not None and type(prepared.step).idempotent)
        if options.rerun_interrupted or idempotent:
            engine._transition(row, "rerun", detail={"reason": "idempotent" if idempotent
                                                     else "--rerun-interrupted"})
            continue
        verdict = None
        if prepared is not None:
            ctx = engine.context(row.key, spec, threading.Event(),
                                 item_of(engine._rows, spec.id, row.key))
            try:
                verdict = prepared.step.verify(ctx, prepared.params, None)
            except Exception as exc:  # verify could not run: let the operator decide
                engine.emit("verify_failed", key=row.key, message=str(exc))
                verdict = None
        if verdict is True:
            if row.state == "cancelled":
                engine._transition(row, "rerun", detail={"reason": "verify"})
                engine._transition(row, "start", started_at=row.started_at)
            engine._transition(row, "recover", finished_at=engine.stamp(),
                               info=dict(row.info, recovered=True, changed=True))
        elif verdict is False:
            engine._transition(row, "rerun", detail={"reason": "verify says not done"})
        else:
            undecided.append(row.key)
    if undecided:
        names = ", ".join(undecided)
        raise InterruptedStep(
            f"step(s) {names} were running when the run stopped and cannot tell whether "
            f"they finished. Check by hand, then either: runbook resume {engine.run_id} "
            f"--rerun-interrupted (run them again) or runbook resume {engine.run_id} "
            "--skip-interrupted (treat them as done)")
