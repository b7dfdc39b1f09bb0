"""Timings read back from the store's timestamps and events.

Nothing here trusts a duration measured by the process that ran a step: a run may have
been resumed by another process, on another day, so every span is the difference of two
stored instants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from runbook.store.base import Event


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def span(start: str | None, end: str | None) -> float | None:
    a, b = ts(start), ts(end)
    return (b - a).total_seconds() if a and b else None


@dataclass
class StepEvents:
    """What the event log says about one step key."""

    first_start: str | None = None
    starts: int = 0
    pauses: int = 0
    retries: int = 0
    retry_pause: float = 0.0
    revert_start: str | None = None
    reverted_at: str | None = None
    approved: dict[str, Any] | None = None


@dataclass
class RunEvents:
    steps: dict[str, StepEvents] = field(default_factory=dict)
    segments: list[tuple[str, str | None]] = field(default_factory=list)  # running spans
    rollback_start: str | None = None
    rollback_end: str | None = None
    not_undone: list[dict[str, Any]] = field(default_factory=list)


def read_events(events: list[Event]) -> RunEvents:
    out = RunEvents()
    open_since: str | None = None
    for e in events:
        if e.key == "":  # run-level transitions
            if e.to_state == "running" and open_since is None:
                open_since = e.at
            elif e.to_state != "running" and open_since is not None:
                out.segments.append((open_since, e.at))
                open_since = None
            if e.kind == "run_roll_back" and out.rollback_start is None:
                out.rollback_start = e.at
            if e.kind in ("run_rolled_back", "run_rollback_fail"):
                out.rollback_end = e.at
            continue
        s = out.steps.setdefault(e.key, StepEvents())
        if e.kind == "start":
            s.starts += 1
            s.first_start = s.first_start or e.at
        elif e.kind == "pause":
            s.pauses += 1
        elif e.kind == "retry":
            s.retries += 1
            s.retry_pause += float(e.detail.get("pause") or 0)
        elif e.kind == "revert":
            s.revert_start = e.at
        elif e.kind == "reverted":
            s.reverted_at = e.at
        elif e.kind == "approved":
            s.approved = dict(e.detail, at=e.at)
        elif e.kind == "not_undone":
            out.not_undone.append({"key": e.key, "why": e.detail.get("why"), "at": e.at})
    if open_since is not None:
        out.segments.append((open_since, None))
    return out


def active_seconds(segments: list[tuple[str, str | None]]) -> float:
    """Time the engine was actually driving the run (pauses between resumes excluded)."""
    return sum(span(a, b) or 0.0 for a, b in segments)


def windows_of(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's windows as stored at its start; shifted when a rehearsal simulated them."""
    shift = timedelta(seconds=float(meta.get("rehearsal_shift", 0.0)))
    simulated = "rehearsal_shift" in meta
    out = []
    for i, w in enumerate(meta.get("windows", [])):
        start, end = datetime.fromisoformat(w[0]) + shift, datetime.fromisoformat(w[1]) + shift
        out.append({"index": i, "start": start.isoformat(), "end": end.isoformat(),
                    "rollback_reserve": float(w[2]) if len(w) > 2 else 0.0,
                    "seconds": (end - start).total_seconds(), "simulated": simulated})
    return out


def window_use(windows: list[dict[str, Any]], meta: dict[str, Any],
               downtime: dict[str, Any]) -> dict[str, Any] | None:
    """How much of the window the downtime used and how much was left when it ended."""
    if not windows:
        return None
    start, end = ts(downtime.get("started_at")), ts(downtime.get("finished_at"))
    chosen = None
    if "downtime_window" in meta and int(meta["downtime_window"]) < len(windows):
        chosen = windows[int(meta["downtime_window"])]
    elif start is not None:
        chosen = next((w for w in windows if ts(w["start"]) <= start < ts(w["end"])),  # type: ignore[operator]
                      None)
    chosen = chosen or windows[0]
    w_start, w_end = ts(chosen["start"]), ts(chosen["end"])
    assert w_start is not None and w_end is not None
    used = left = None
    if end is not None:
        used = max(0.0, (min(end, w_end) - w_start).total_seconds())
        left = (w_end - end).total_seconds()
    return dict(chosen, used_seconds=used, left_seconds=left,
                overran=left is not None and left < 0)
