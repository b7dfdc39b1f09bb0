"""The window gate: what the engine asks before a step starts and on every loop turn.

``before_step`` keeps downtime steps inside an open window (waiting with a countdown when
``wait`` is set), runs the go/no-go forecast before the first downtime step and at every
``point_of_no_return``, and holds approvals to their deadlines. ``tick`` watches running
downtime steps: once a rollback could no longer end inside the window it says so and
answers per ``on_window_overrun``. Every decision is stored in the run's
``meta["decisions"]`` (and as an event) so the report can show it with its numbers.

In a rehearsal the windows are simulated: they are shifted so that the first one opens
when the rehearsal first needs it, which keeps the arithmetic meaningful in the lab.
"""

from __future__ import annotations

import getpass
import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from runbook.duration import parse_duration
from runbook.engine.forecast import Forecast, Inputs, chain, forecast, hms, latest_start
from runbook.errors import GoNoGoRefused, Interrupted, Problem, WindowClosed
from runbook.model import Runbook, StepSpec, Window
from runbook.window import current_window, next_window

if TYPE_CHECKING:
    from runbook.engine.attempt import Inflight
    from runbook.engine.runner import Engine

DEADLINE_BASES = ("window_start", "window_end", "point_of_no_return")
#: seconds between countdown notices while waiting for a window
COUNTDOWN_STEP = 60.0
#: seconds of run time between two forecasts for the live view
FORECAST_EVERY = 30.0


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def check_deadlines(runbook: Runbook) -> list[Problem]:
    """Problems with ``deadline`` mappings, located in the file (exit 2 before running)."""
    problems: list[Problem] = []
    for spec in runbook.steps:
        if spec.deadline is None:
            continue
        for message in _deadline_problems(spec, runbook):
            path = ("steps", spec.index, "deadline")
            if runbook.located is not None:
                problems.append(runbook.located.at(path, message))
            else:
                problems.append(Problem(runbook.path, 1, 1, message))
    return problems


def _deadline_problems(spec: StepSpec, runbook: Runbook) -> list[str]:
    label = f"step '{spec.id}': deadline"
    d = spec.deadline or {}
    out = []
    if spec.uses != "approve":
        out.append(f"{label}: only 'approve' steps can carry a deadline")
    unknown = sorted(set(d) - {"before", "minus"})
    if unknown:
        out.append(f"{label}: unknown key '{unknown[0]}' (use 'before' and 'minus')")
    if d.get("before") not in DEADLINE_BASES:
        out.append(f"{label}: 'before' must be one of {', '.join(DEADLINE_BASES)}, "
                   f"got {d.get('before')!r}")
    try:
        parse_duration(d.get("minus", 0))
    except ValueError as exc:
        out.append(f"{label}: 'minus' {exc}")
    if not runbook.windows:
        out.append(f"{label}: the runbook has no window to count from")
    if d.get("before") == "point_of_no_return" and \
            not any(s.point_of_no_return for s in runbook.steps):
        out.append(f"{label}: no step is marked point_of_no_return")
    return out


class Gate:
    def __init__(self, *, force: str | None = None, wait: bool = False,
                 operator: str | None = None) -> None:
        self.force = force
        self.wait = wait
        self.operator = operator or who()
        self._history: tuple[dict[str, list[float]], dict[str, list[float]]] | None = None
        self._running: dict[str, Inflight] = {}
        self._overrun_reported = False
        self._last_forecast: float | None = None
        self._meta_cache: dict[str, Any] = {}
        self._meta_of = ""

    # -- the two hooks the engine calls -------------------------------------------------
    def before_step(self, engine: Engine, spec: StepSpec) -> None:
        if spec.deadline is not None:
            self._check_deadline(engine, spec)
        for need in spec.needs:  # an approval given on the terminal is only known now
            dep = engine.runbook.by_id.get(need)
            if dep is not None and dep.deadline is not None:
                self._check_deadline(engine, dep)
        if not engine.runbook.windows:
            return
        if spec.phase == "downtime":
            self._check_window(engine, spec)
        first_downtime = spec.phase == "downtime" and not self._downtime_started(engine)
        if first_downtime or spec.point_of_no_return:
            what = ("at the point of no return" if spec.point_of_no_return
                    else "before the first downtime step")
            self._go_no_go(engine, spec, f"{what} '{spec.id}'")
            if spec.point_of_no_return:
                marks = dict(self._meta(engine).get("ponr_started", {}))
                marks[spec.id] = engine.clock.now().isoformat()
                self._set_meta(engine, ponr_started=marks)
        if spec.phase == "downtime" and "downtime_window" not in self._meta(engine):
            w = current_window(self.windows(engine), engine.clock.now())
            self._set_meta(engine, downtime_window=w.index if w else 0)

    def tick(self, engine: Engine, running: dict[str, Inflight]) -> tuple[str, str] | None:
        self._running = running
        if not engine.runbook.windows or "downtime_window" not in self._meta(engine):
            return None
        downtime = [k for k, f in running.items() if f.spec.phase == "downtime"]
        now = engine.clock.now()
        mono = engine.clock.monotonic()
        if downtime and (self._last_forecast is None
                         or mono - self._last_forecast >= FORECAST_EVERY):
            self._last_forecast = mono
            live = self._forecast(engine, "now", self._window_for(engine, now))
            engine.emit("forecast", **live.to_dict())
        if not downtime or self._overrun_reported:
            return None
        windows = chain(self.windows(engine), self._downtime_window(engine))
        end = windows[-1].end
        back = self._forecast(engine, "now", windows[0], done_only=True).rollback
        if now + timedelta(seconds=back) <= end:
            return None
        self._overrun_reported = True
        action = engine.runbook.on_window_overrun
        late = now + timedelta(seconds=back) - end
        message = (f"window overrun: step{'s' if len(downtime) > 1 else ''} "
                   f"{', '.join(repr(k) for k in sorted(downtime))} still running at "
                   f"{_clock(now, end)}; a rollback now takes {hms(back)} and would end "
                   f"{hms(late.total_seconds())} after the window closes at {_clock(end, end)}"
                   f"; on_window_overrun: {action}")
        engine.emit("notice", message=message)
        self._record(engine, {"kind": "overrun", "steps": sorted(downtime), "action": action,
                              "rollback": back, "window_end": end.isoformat(),
                              "late": late.total_seconds()})
        if action == "rollback":
            return ("rollback", message)
        if action == "pause":
            return ("pause", message + f"; no new step starts. Resume with: runbook resume "
                    f"{engine.run_id}   or undo with: runbook rollback {engine.run_id}")
        return None

    # -- windows --------------------------------------------------------------------------
    def windows(self, engine: Engine) -> tuple[Window, ...]:
        """The run's windows; shifted to start now the first time a rehearsal needs one."""
        real = engine.runbook.windows
        if engine.kind != "rehearsal" or not real:
            return real
        meta = self._meta(engine)
        if "rehearsal_shift" not in meta:
            shift = (engine.clock.now() - real[0].start).total_seconds()
            self._set_meta(engine, rehearsal_shift=shift)
            engine.emit("notice", message="rehearsal: the maintenance window is simulated; it "
                        "opens now and lasts as long as the real one")
        else:
            shift = float(meta["rehearsal_shift"])
        delta = timedelta(seconds=shift)
        from dataclasses import replace

        return tuple(replace(w, start=w.start + delta, end=w.end + delta) for w in real)

    def _downtime_window(self, engine: Engine) -> Window:
        index = int(self._meta(engine).get("downtime_window", 0))
        return next(w for w in self.windows(engine) if w.index == index)

    def _window_for(self, engine: Engine, now: datetime) -> Window:
        windows = self.windows(engine)
        return (current_window(windows, now) or next_window(windows, now)
                or self._downtime_window(engine))

    def _check_window(self, engine: Engine, spec: StepSpec) -> None:
        while True:
            windows = self.windows(engine)
            now = engine.clock.now()
            open_now = current_window(windows, now)
            allowed = windows
            if self._downtime_started(engine):
                allowed = tuple(chain(windows, self._downtime_window(engine)))
            if open_now is not None and open_now in allowed:
                return
            upcoming = next_window(allowed, now)
            if upcoming is None:
                started = self._downtime_window(engine) if self._downtime_started(engine) \
                    else None
                why = (f"window {started.index + 1} closed at {_clock(started.end, started.end)}"
                       f" and the runbook does not let this run continue in a later window"
                       if started is not None else "no window is left")
                raise WindowClosed(f"step '{spec.id}' is a downtime step and {why}; undo with:"
                                   f" runbook rollback {engine.run_id}")
            left = (upcoming.start - now).total_seconds()
            opens = (f"window {upcoming.index + 1} opens at "
                     f"{_clock(upcoming.start, upcoming.start)}, in {hms(left)}")
            if not self.wait:
                raise WindowClosed(f"step '{spec.id}' is a downtime step and {opens}; "
                                   f"resume then with: runbook resume {engine.run_id}, "
                                   "or wait for it with --wait")
            engine.emit("window_wait", key=spec.id, opens_at=upcoming.start.isoformat(),
                        seconds=left, message=f"waiting: {opens}")
            self._sleep(engine, min(COUNTDOWN_STEP, left))

    def _sleep(self, engine: Engine, seconds: float) -> None:
        """Sleep in one-second slices so Ctrl-C stops the wait at once, not a minute on."""
        slept = 0.0
        while slept < seconds:
            if engine.stop_requests:
                raise Interrupted("stopped while waiting for the window; resume with: "
                                  f"runbook resume {engine.run_id}")
            piece = min(1.0, seconds - slept)
            engine.clock.sleep(piece)
            slept += piece

    # -- go/no-go -------------------------------------------------------------------------
    def _go_no_go(self, engine: Engine, spec: StepSpec, at: str) -> None:
        now = engine.clock.now()
        f = self._forecast(engine, at, self._window_for(engine, now))
        text = "\n".join(f.lines())
        decision: dict[str, Any] = {"kind": "go_no_go", "step": spec.id,
                                    "verdict": "go" if f.fits else "no-go",
                                    "forecast": f.to_dict(), "arithmetic": f.lines()}
        engine.emit("forecast", **f.to_dict())
        if f.fits:
            self._record(engine, decision)
            engine.emit("decision", message=f"{text}\ngo: proceeding with '{spec.id}'")
            return
        if self.force:
            decision.update(verdict="forced", forced={"by": self.operator,
                                                      "at": now.isoformat(),
                                                      "reason": self.force})
            self._record(engine, decision)
            engine.emit("decision", message=f"{text}\nforced by {self.operator}: "
                        f"{self.force}")
            return
        self._record(engine, decision)
        raise GoNoGoRefused(f"no-go {at}: the rest of the run plus a rollback does not fit "
                            f"in the window\n{text}\nproceed anyway with: runbook resume "
                            f"{engine.run_id} --force \"REASON\"")

    def _forecast(self, engine: Engine, at: str, window: Window,
                  done_only: bool = False) -> Forecast:
        runbook = engine.runbook
        inputs = self._inputs(engine)
        if done_only:  # the rollback of what has run so far, not of the whole plan
            ran = {s.id for s in runbook.steps
                   if inputs.states.get(s.id, "pending") not in ("pending", "skipped")}
            states = {k: v for k, v in inputs.states.items()}
            for s in runbook.steps:
                if s.id not in ran:
                    states[s.id] = "skipped"
            inputs = Inputs(now=inputs.now, states=states, elapsed=inputs.elapsed,
                            items=inputs.items, applied=inputs.applied,
                            reverted=inputs.reverted, no_undo=inputs.no_undo)
        from dataclasses import replace

        shifted = replace(runbook, windows=self.windows(engine))
        return forecast(shifted, inputs, window, at)

    def _inputs(self, engine: Engine) -> Inputs:
        applied, reverted = self._load_history(engine)
        states: dict[str, str] = {}
        items: dict[str, int] = {}
        for spec in engine.runbook.steps:
            row = engine._rows.get(spec.id)
            states[spec.id] = row.state if row is not None else "pending"
            if spec.for_each is not None:
                if row is not None and "items" in row.info:
                    items[spec.id] = len(row.info["items"])
                elif isinstance(spec.for_each, list):
                    items[spec.id] = len(spec.for_each)
        mono = engine.clock.monotonic()
        elapsed: dict[str, float] = {}
        for key, inflight in list(self._running.items()):
            step_id = key.split("[", 1)[0]
            elapsed[step_id] = max(elapsed.get(step_id, 0.0), mono - inflight.started)
        return Inputs(now=engine.clock.now(), states=states, elapsed=elapsed, items=items,
                      applied=applied, reverted=reverted, no_undo=_no_undo(engine))

    def _load_history(self, engine: Engine) -> tuple[dict[str, list[float]],
                                                      dict[str, list[float]]]:
        """Per-item apply and revert durations of every other run, from stored times."""
        if self._history is None:
            applied: dict[str, list[float]] = {}
            reverted: dict[str, list[float]] = {}
            wanted = set(engine.runbook.by_id)
            for run in engine.store.list_runs():
                # step ids mean something only within one runbook
                if run.run_id == engine.run_id or run.runbook != engine.runbook.name:
                    continue
                for row in engine.store.steps(run.run_id).values():
                    if row.step_id not in wanted or row.info.get("parent"):
                        continue
                    if row.state in ("succeeded", "reverted") and row.started_at \
                            and row.finished_at:
                        took = (datetime.fromisoformat(row.finished_at)
                                - datetime.fromisoformat(row.started_at)).total_seconds()
                        applied.setdefault(row.step_id, []).append(took)
                    if row.info.get("revert_seconds") is not None:
                        reverted.setdefault(row.step_id, []).append(
                            float(row.info["revert_seconds"]))
            self._history = (applied, reverted)
        return self._history

    # -- approvals ------------------------------------------------------------------------
    def deadline(self, engine: Engine, spec: StepSpec) -> datetime:
        d = spec.deadline or {}
        minus = timedelta(seconds=parse_duration(d.get("minus", 0)))
        now = engine.clock.now()
        window = (self._downtime_window(engine) if self._downtime_started(engine)
                  else self._window_for(engine, now))
        base = d.get("before")
        if base == "window_start":
            return window.start - minus
        if base == "window_end":
            return window.end - minus
        ponr = next(s for s in engine.runbook.steps if s.point_of_no_return)
        passed = self._meta(engine).get("ponr_started", {})
        if ponr.id in passed:  # the point of no return is behind us: its real time counts
            return datetime.fromisoformat(passed[ponr.id]) - minus
        from dataclasses import replace

        shifted = replace(engine.runbook, windows=self.windows(engine))
        return latest_start(shifted, self._inputs(engine), window, ponr.id) - minus

    def _check_deadline(self, engine: Engine, spec: StepSpec) -> None:
        if engine.kind == "rehearsal":
            return  # a rehearsal's window is simulated; its approvals cannot be late
        row = engine._rows.get(spec.id)
        approval = (row.info.get("approval") if row is not None else None) or (
            {"by": row.outputs.get("approved_by"), "at": row.outputs.get("approved_at")}
            if row is not None and row.outputs.get("approved_at") else None)
        limit = self.deadline(engine, spec)
        now = engine.clock.now()
        if approval is not None:
            given = datetime.fromisoformat(str(approval["at"]))
            if given <= limit:
                return
            why = (f"approval '{spec.id}' by {approval.get('by')} came at "
                   f"{_clock(given, limit)}, after its deadline {_clock(limit, limit)}")
        elif now > limit:
            why = f"approval '{spec.id}' missed its deadline {_clock(limit, limit)}"
        else:
            return
        self._record(engine, {"kind": "approval_deadline", "step": spec.id,
                              "verdict": "refused", "deadline": limit.isoformat(),
                              "approval": approval})
        raise GoNoGoRefused(f"{why}; a late approval does not proceed: undo with: runbook "
                            f"rollback {engine.run_id}")

    # -- run metadata ---------------------------------------------------------------------
    def _downtime_started(self, engine: Engine) -> bool:
        return "downtime_window" in self._meta(engine)

    def _meta(self, engine: Engine) -> dict[str, Any]:
        # read once per run and kept: tick runs on every loop turn, and while the run is
        # driven this gate is the only writer of the keys it reads
        if self._meta_of != engine.run_id:
            self._meta_cache = dict(engine.store.get_run(engine.run_id).meta)
            self._meta_of = engine.run_id
        return dict(self._meta_cache)

    def _set_meta(self, engine: Engine, **values: Any) -> None:
        meta = dict(engine.store.get_run(engine.run_id).meta)  # fresh: others may write too
        meta.update(values)
        engine.store.update_run_meta(engine.run_id, meta)
        self._meta_cache, self._meta_of = meta, engine.run_id

    def _record(self, engine: Engine, decision: dict[str, Any]) -> None:
        decision = dict(decision, at=engine.clock.now().isoformat())
        meta = dict(engine.store.get_run(engine.run_id).meta)
        meta["decisions"] = [*meta.get("decisions", []), decision]
        engine.store.update_run_meta(engine.run_id, meta)
        self._meta_cache, self._meta_of = meta, engine.run_id
        engine.store.add_event(engine.run_id, str(decision.get("step", "run")),
                               str(decision["kind"]), decision)


def _clock(moment: datetime, like: datetime) -> str:
    """A moment in the timezone the window was written in."""
    return moment.astimezone(like.tzinfo).isoformat(timespec="seconds")


def _no_undo(engine: Engine) -> frozenset[str]:
    """Step types of this runbook that have no undo of their own (the class has no revert)."""
    from runbook.engine.forecast import NO_UNDO
    from runbook.step import Step

    out = set(NO_UNDO)
    for uses in {s.uses for s in engine.runbook.steps}:
        try:
            if engine.registry.load(uses).revert is Step.revert:
                out.add(uses)
        except Exception:  # an unloadable type fails at its own step, not in the forecast
            continue
    return frozenset(out)
