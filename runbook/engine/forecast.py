"""Does the rest of a run, plus a rollback, still fit in the maintenance window?

Pure arithmetic: the caller passes the time, the step states and the history; nothing
here reads a clock or a store, so every number can be checked by hand in a test.

Per step, the expected duration is the 90th percentile of earlier runs and rehearsals of
the same step id (nearest-rank, so it is always a duration that really happened), else
the step's ``estimate``; a ``for_each`` step is that per-item time times the number of
waves its items run in. The forecast is the remaining critical path (steps of phase
``after`` excluded: they run once the downtime is over) plus the time a full rollback
would take (steps of phase ``after`` excluded there too), against the time left in the
window minus its ``rollback_reserve``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runbook.engine.plan import critical_path, topological
from runbook.model import Runbook, StepSpec, Window

#: built-in step types that change nothing, so a rollback passes over them at no cost
NO_UNDO = ("approve", "wait", "http.check")
DONE = ("succeeded", "skipped")


def hms(seconds: float) -> str:
    """Exact short form for arithmetic people re-add by hand: 1h05m, 4m30s, 12s."""
    total = round(abs(seconds))
    sign = "-" if seconds < 0 and total else ""
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h{m:02d}m" + (f"{s:02d}s" if s else "")
    if m:
        return f"{sign}{m}m" + (f"{s:02d}s" if s else "")
    return f"{sign}{s}s"


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile: the smallest value at or above 90% of the sample."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass(frozen=True)
class StepTime:
    step_id: str
    per_item: float
    waves: int
    source: str  # "p90 of 3 runs" | "estimate" | "no estimate"

    @property
    def seconds(self) -> float:
        return self.per_item * self.waves


def waves(spec: StepSpec, items: int, runbook_parallel: int) -> int:
    """How many rounds a for_each step needs: items over the parallelism it gets."""
    if spec.for_each is None:
        return 1
    if items <= 0:
        return 0
    lanes = min(spec.max_parallel or items, runbook_parallel, items)
    return math.ceil(items / max(1, lanes))


def step_time(spec: StepSpec, history: list[float], rounds: int) -> StepTime:
    if history:
        runs = len(history)
        return StepTime(spec.id, p90(history), rounds,
                        f"p90 of {runs} run{'s' if runs != 1 else ''}")
    if spec.estimate is not None:
        return StepTime(spec.id, float(spec.estimate), rounds, "estimate")
    return StepTime(spec.id, 0.0, rounds, "no estimate")


def revert_time(spec: StepSpec, history: list[float], items: int,
                no_undo: frozenset[str] = frozenset(NO_UNDO)) -> StepTime:
    """A rollback reverts items one by one, newest first, so items are not parallel."""
    count = max(1, items) if spec.for_each is not None else 1
    if spec.rollback.mode == "none" or (spec.uses in no_undo and spec.rollback.mode == "auto"):
        return StepTime(spec.id, 0.0, count, "nothing to undo")
    return step_time(spec, history, count)


@dataclass(frozen=True)
class Inputs:
    """What the engine knows at the moment of the forecast."""

    now: datetime
    states: dict[str, str] = field(default_factory=dict)  # step id -> state
    elapsed: dict[str, float] = field(default_factory=dict)  # running step id -> seconds
    items: dict[str, int] = field(default_factory=dict)  # for_each step id -> item count
    #: step types with no undo of their own (read-only): a rollback passes them at no cost
    no_undo: frozenset[str] = frozenset(NO_UNDO)
    applied: dict[str, list[float]] = field(default_factory=dict)  # per-item history
    reverted: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Forecast:
    at: str  # what is being decided, e.g. "before the first downtime step 'stop'"
    now: datetime
    window: Window
    window_end: datetime  # end of the last window this run may use
    left: float
    reserve: float
    remaining: float
    path: list[str]
    rollback: float
    times: dict[str, StepTime]

    @property
    def usable(self) -> float:
        return self.left - self.reserve

    @property
    def needed(self) -> float:
        return self.remaining + self.rollback

    @property
    def fits(self) -> bool:
        return self.needed <= self.usable

    @property
    def margin(self) -> float:
        return self.usable - self.needed

    def lines(self) -> list[str]:
        """The arithmetic, one term per line, so a change board can re-add it."""
        chain = " -> ".join(f"{s} {hms(self.times[s].seconds)} ({self._why(s)})"
                            for s in self.path if s in self.times) or "nothing left"
        verdict = (f"fits with {hms(self.margin)} to spare" if self.fits
                   else f"DOES NOT FIT: {hms(-self.margin)} short")
        return [
            (f"forecast {self.at}, at "
            f"{self.now.astimezone(self.window_end.tzinfo).isoformat(timespec='seconds')}:"),
            f"  remaining critical path  {hms(self.remaining):>9}  {chain}",
            f"+ rollback of every step   {hms(self.rollback):>9}",
            f"= needed                   {hms(self.needed):>9}",
            (f"  window left              {hms(self.left):>9}  (until "
            f"{self.window_end.isoformat(timespec='seconds')})"),
            f"- rollback reserve         {hms(self.reserve):>9}",
            f"= usable                   {hms(self.usable):>9}",
            f"  {verdict}",
        ]

    def _why(self, step_id: str) -> str:
        t = self.times[step_id]
        if t.waves > 1:
            return f"{t.source}, {hms(t.per_item)} x {t.waves}"
        return t.source

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "now": self.now.isoformat(), "window": self.window.index,
                "window_end": self.window_end.isoformat(), "left": self.left,
                "reserve": self.reserve, "usable": self.usable,
                "remaining": self.remaining, "critical_path": list(self.path),
                "rollback": self.rollback, "needed": self.needed, "fits": self.fits,
                "margin": self.margin,
                "sources": {k: {"seconds": t.seconds, "per_item": t.per_item,
                                "waves": t.waves, "source": t.source}
                            for k, t in self.times.items() if k in self.path}}


def chain(windows: tuple[Window, ...], current: Window) -> list[Window]:
    """The current window and the following ones the runbook lets the run continue in."""
    ordered = sorted(windows, key=lambda w: w.start)
    out = [current]
    for w in ordered:
        if w.start >= out[-1].end and out[-1].continue_in_next:
            out.append(w)
    return out


def time_left(windows: list[Window], now: datetime) -> float:
    """Seconds of window time from ``now``: only open windows count, not the gaps."""
    return sum(max(0.0, (w.end - max(now, w.start)).total_seconds()) for w in windows)


def rollback_seconds(runbook: Runbook, inputs: Inputs, step_ids: list[str]) -> float:
    by_id = runbook.by_id
    total = 0.0
    for step_id in step_ids:
        spec = by_id[step_id]
        # 'after' steps run once the downtime is over: a failure inside the window
        # never has them to undo
        if inputs.states.get(step_id) == "skipped" or spec.phase == "after":
            continue
        total += revert_time(spec, inputs.reverted.get(step_id, []),
                             inputs.items.get(step_id, 1), inputs.no_undo).seconds
    return total


def expected_times(runbook: Runbook, inputs: Inputs) -> dict[str, StepTime]:
    times = {}
    for spec in runbook.steps:
        rounds = waves(spec, inputs.items.get(spec.id, 1), runbook.max_parallel)
        times[spec.id] = step_time(spec, inputs.applied.get(spec.id, []), rounds)
    return times


def forecast(runbook: Runbook, inputs: Inputs, window: Window, at: str) -> Forecast:
    """Remaining critical path + full rollback against the window chain from ``window``."""
    order = topological(runbook)
    times = expected_times(runbook, inputs)
    seconds: dict[str, float] = {}
    for spec in order:
        state = inputs.states.get(spec.id, "pending")
        if state in DONE or spec.phase == "after":
            seconds[spec.id] = 0.0
        elif state == "running":
            seconds[spec.id] = max(0.0, times[spec.id].seconds
                                   - inputs.elapsed.get(spec.id, 0.0))
        else:
            seconds[spec.id] = times[spec.id].seconds
    remaining, path = critical_path(order, seconds)
    path = [s for s in path if seconds[s] > 0]
    shown = {s: StepTime(s, seconds[s] / max(1, times[s].waves), times[s].waves,
                         times[s].source + (", remainder" if
                                            inputs.states.get(s) == "running" else ""))
             for s in path}
    windows = chain(runbook.windows, window)
    return Forecast(at=at, now=inputs.now, window=window, window_end=windows[-1].end,
                    left=time_left(windows, inputs.now), reserve=windows[-1].rollback_reserve,
                    remaining=remaining, path=path,
                    rollback=rollback_seconds(runbook, inputs, [s.id for s in order]),
                    times=shown)


def latest_start(runbook: Runbook, inputs: Inputs, window: Window, step_id: str) -> datetime:
    """The last moment ``step_id`` may start so that it, what follows it and a full
    rollback still fit before the window's end minus the reserve."""
    from datetime import timedelta

    order = topological(runbook)
    times = expected_times(runbook, inputs)
    after = _descendants(runbook, step_id)
    seconds = {s.id: (times[s.id].seconds if s.id in after and s.phase != "after" else 0.0)
               for s in order}
    rest, _ = critical_path(order, seconds)
    windows = chain(runbook.windows, window)
    rollback = rollback_seconds(runbook, inputs, [s.id for s in order])
    end = windows[-1].end - timedelta(seconds=windows[-1].rollback_reserve)
    return end - timedelta(seconds=rest + rollback)


def _descendants(runbook: Runbook, step_id: str) -> set[str]:
    """``step_id`` and every step that (transitively) needs it."""
    out = {step_id}
    changed = True
    while changed:
        changed = False
        for spec in runbook.steps:
            if spec.id not in out and any(n in out for n in spec.needs):
                out.add(spec.id)
                changed = True
    return out
