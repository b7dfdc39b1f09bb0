"""Report data for a run, computed only from stored timestamps and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runbook.loader.validate import parse_runbook
from runbook.store.base import Store

REPORT_VERSION = 1


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def run_report(store: Store, run_id: str) -> dict[str, Any]:
    """The JSON report of a run (fields documented in README, "JSON report")."""
    run = store.get_run(run_id)
    rows = store.steps(run_id)
    events = store.events(run_id)
    try:
        runbook = parse_runbook(run.text, run.path)
        specs = runbook.by_id
    except Exception:
        runbook, specs = None, {}
    started = _ts(run.started_at)
    finished = _ts(run.finished_at)
    order = {spec_id: i for i, spec_id in enumerate(specs)}
    steps = []
    downtime = 0.0
    for row in sorted(rows.values(), key=lambda r: (order.get(r.step_id, 1 << 30), r.key)):
        spec = specs.get(row.step_id)
        start, end = _ts(row.started_at), _ts(row.finished_at)
        seconds = (end - start).total_seconds() if start and end else None
        retries = sum(1 for e in events if e.key == row.key and e.kind == "retry")
        entry = {
            "key": row.key, "step": row.step_id, "uses": spec.uses if spec else None,
            "state": row.state, "phase": spec.phase if spec else None,
            "estimate": spec.estimate if spec else None,
            "started_at": row.started_at, "finished_at": row.finished_at,
            "seconds": seconds, "attempts": row.info.get("attempts", row.attempt),
            "retries": retries, "changed": row.info.get("changed"),
            "recovered": bool(row.info.get("recovered")),
            "revert_seconds": row.info.get("revert_seconds"),
            "error": row.error["message"] if row.error else None,
            "point_of_no_return": bool(spec.point_of_no_return) if spec else False,
            "parent": bool(row.info.get("parent")),
            "approval": row.info.get("approval"),
        }
        if spec and spec.phase == "downtime" and seconds and not entry["parent"]:
            downtime += seconds
        steps.append(entry)
    rollback = [e for e in events if e.kind in ("revert", "reverted", "revert_fail",
                                                 "not_undone")]
    return {
        "version": REPORT_VERSION,
        "run_id": run.run_id, "runbook": run.runbook, "path": run.path, "kind": run.kind,
        "state": run.state, "created_at": run.created_at, "started_at": run.started_at,
        "finished_at": run.finished_at,
        "seconds": (finished - started).total_seconds() if started and finished else None,
        "downtime_seconds": downtime,
        "windows": run.meta.get("windows", []),
        "decisions": run.meta.get("decisions", []),
        "force": run.meta.get("force"),
        "steps": steps,
        "rollback": [{"key": e.key, "event": e.kind, "at": e.at, "detail": e.detail}
                     for e in rollback],
    }
