"""Report data for a run, computed only from stored timestamps and events.

The fields are documented in docs/report-json.md; bump ``REPORT_VERSION`` when one is
removed or changes meaning (adding one does not).
"""

from __future__ import annotations

from typing import Any

from runbook.engine.forecast import waves
from runbook.engine.plan import critical_path, topological
from runbook.engine.render import item_index
from runbook.errors import RunbookError
from runbook.loader.validate import parse_runbook
from runbook.model import Runbook, StepSpec
from runbook.registry import Registry
from runbook.report.timing import (
    RunEvents,
    StepEvents,
    active_seconds,
    read_events,
    span,
    ts,
    window_use,
    windows_of,
)
from runbook.store.base import StepRow, Store

REPORT_VERSION = 2


def _runbook(text: str, path: str, registry: Registry | None) -> Runbook | None:
    try:
        return parse_runbook(text, path, registry=registry)
    except RunbookError:  # a report of an old run must not fail on a since-invalid runbook
        return None


def run_report(store: Store, run_id: str, registry: Registry | None = None) -> dict[str, Any]:
    """The JSON report of a run (fields documented in docs/report-json.md).

    ``registry`` names the step types the run's runbook uses (default: the installed ones).
    """
    run = store.get_run(run_id)
    rows = store.steps(run_id)
    ev = read_events(store.events(run_id))
    runbook = _runbook(run.text, run.path, registry)
    specs = runbook.by_id if runbook else {}
    order = {spec_id: i for i, spec_id in enumerate(specs)}
    steps = [_step(row, specs.get(row.step_id), ev.steps.get(row.key, StepEvents()), rows,
                   runbook)
             for row in sorted(rows.values(),
                               key=lambda r: (order.get(r.step_id, 1 << 30), item_index(r.key)))]
    downtime = _downtime(steps, ev)
    windows = windows_of(run.meta)
    ponr = next((s for s in steps if s["point_of_no_return"] and s["started_at"]
                 and s["state"] != "pending"), None)  # a paused approval has not crossed it
    return {
        "version": REPORT_VERSION,
        "run_id": run.run_id, "runbook": run.runbook, "path": run.path, "kind": run.kind,
        "rehearsal": run.kind == "rehearsal",
        "state": run.state, "created_at": run.created_at, "started_at": run.started_at,
        "finished_at": run.finished_at,
        "seconds": span(run.started_at, run.finished_at),
        "active_seconds": active_seconds(ev.segments),
        "resumes": max(0, len(ev.segments) - 1),
        "downtime_seconds": downtime["seconds"] or 0.0,
        "downtime": downtime,
        "windows": windows,
        "window": window_use(windows, run.meta, downtime),
        "point_of_no_return": ({"step": ponr["step"], "at": ponr["started_at"]}
                               if ponr else None),
        "critical_path": _critical(runbook, steps),
        "decisions": run.meta.get("decisions", []),
        "force": run.meta.get("force"),
        "approvals": [dict(s["approval"], step=s["key"], state=s["state"])
                      for s in steps if s["approval"]],
        "steps": steps,
        "rollback": _rollback(steps, ev),
    }


def _planned(spec: StepSpec | None, row: StepRow, runbook: Runbook | None) -> float | None:
    if spec is None or spec.estimate is None:
        return None
    if row.info.get("parent") and runbook is not None:
        return spec.estimate * waves(spec, len(row.info.get("items", [])), runbook.max_parallel)
    return float(spec.estimate)


def _step(row: StepRow, spec: StepSpec | None, ev: StepEvents, rows: dict[str, StepRow],
          runbook: Runbook | None) -> dict[str, Any]:
    seconds = span(row.started_at, row.finished_at)
    planned = _planned(spec, row, runbook)
    approval = row.info.get("approval")
    if approval is None and row.outputs.get("approved_at"):  # approved on the terminal
        approval = {"by": row.outputs.get("approved_by"), "at": row.outputs["approved_at"],
                    "via": "terminal"}
    # time spent waiting before the final attempt started: approvals, windows, pauses
    waited = span(ev.first_start, row.started_at) if ev.pauses else 0.0
    revert = span(ev.revert_start, ev.reverted_at)
    return {
        "key": row.key, "step": row.step_id, "uses": spec.uses if spec else None,
        "state": row.state, "phase": spec.phase if spec else None,
        "estimate": spec.estimate if spec else None, "planned_seconds": planned,
        "first_started_at": ev.first_start or row.started_at,
        "started_at": row.started_at, "finished_at": row.finished_at,
        "seconds": seconds,
        "delta_seconds": (seconds - planned) if seconds is not None and planned else None,
        "attempts": row.info.get("attempts", row.attempt),
        "retries": ev.retries,
        "retry_wait_seconds": ev.retry_pause,
        "pauses": ev.pauses, "wait_seconds": waited or 0.0,
        "changed": row.info.get("changed"),
        "recovered": bool(row.info.get("recovered")),
        "revert_seconds": revert if revert is not None else row.info.get("revert_seconds"),
        "reverted_at": ev.reverted_at or row.info.get("reverted_at"),
        "error": row.error["message"] if row.error else None,
        "point_of_no_return": bool(spec.point_of_no_return) if spec else False,
        "parent": bool(row.info.get("parent")),
        "approval": approval,
        # a step's own one-line account of its work (bytes moved, rows rewritten, ...)
        "summary": row.outputs.get("summary") if isinstance(row.outputs.get("summary"),
                                                            str) else None,
    }


def _downtime(steps: list[dict[str, Any]], ev: RunEvents) -> dict[str, Any]:
    """From the first downtime step's start until the last one ended; when the run was
    rolled back after that, the downtime lasts until the rollback finished."""
    down = [s for s in steps if s["phase"] == "downtime" and not s["parent"]
            and s["first_started_at"]]
    if not down:
        return {"started_at": None, "finished_at": None, "seconds": None}
    start = min(s["first_started_at"] for s in down)
    ends = [s["finished_at"] for s in down if s["finished_at"]]
    end = max(ends) if ends else None
    if ev.rollback_end and (end is None or ts(ev.rollback_end) > ts(end)):  # type: ignore[operator]
        end = ev.rollback_end
    return {"started_at": start, "finished_at": end, "seconds": span(start, end)}


def _critical(runbook: Runbook | None, steps: list[dict[str, Any]]) -> dict[str, Any]:
    if runbook is None:
        return {"planned": {"steps": [], "seconds": 0.0}, "actual": {"steps": [], "seconds": 0.0}}
    order = topological(runbook)
    by_step = {s["key"]: s for s in steps}
    planned = {k: float(s["planned_seconds"] or 0) for k, s in by_step.items()}
    for spec in order:  # steps that never ran still have a plan
        if spec.id not in planned and spec.estimate is not None:
            planned[spec.id] = float(spec.estimate)
    actual = {k: float(s["seconds"] or 0) for k, s in by_step.items()}
    p_total, p_path = critical_path(order, planned)
    a_total, a_path = critical_path(order, actual)
    return {"planned": {"steps": p_path, "seconds": p_total},
            "actual": {"steps": a_path, "seconds": a_total}}


def _rollback(steps: list[dict[str, Any]], ev: RunEvents) -> dict[str, Any]:
    reverted = sorted(({"key": s["key"], "seconds": s["revert_seconds"],
                        "reverted_at": s["reverted_at"]}
                       for s in steps if s["reverted_at"] and not s["parent"]),
                      key=lambda r: str(r["reverted_at"]))
    return {"started_at": ev.rollback_start, "finished_at": ev.rollback_end,
            "seconds": span(ev.rollback_start, ev.rollback_end),
            "reverted": reverted, "not_undone": ev.not_undone}
