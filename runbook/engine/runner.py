"""The driver: runs a runbook's steps in DAG order, checkpointing every state change.

One driver thread owns the run and is the only writer of step states; each step attempt
runs in a worker thread and reports back through a queue. A state change is committed
before the engine acts on it (``running`` is durable before ``apply`` is called), and a
step's outputs, undo record and new state are committed in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import secrets as _random
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from runbook.clock import Clock, RealClock
from runbook.context import StepContext
from runbook.engine.attempt import (
    Inflight,
    check_timeouts,
    error_data,
    next_deadline,
    settle,
    work,
)
from runbook.engine.frontier import DONE, Frontier
from runbook.engine.machine import TERMINAL_RUN, run_next, step_next
from runbook.engine.render import Prepared, item_key, prepare, template_context
from runbook.errors import (
    Interrupted,
    RunbookError,
    SecretUnavailable,
    StepError,
    StepFailed,
    Stopped,
    ValidationFailed,
    WindowClosed,
)
from runbook.loader import template
from runbook.model import Runbook, StepSpec
from runbook.registry import Registry, default_registry
from runbook.secret import REFERENCE, Redactor, SecretResolver
from runbook.store.base import RunRow, StepRow, Store, holder_alive, process_holder
from runbook.window import current_window, next_window

log = logging.getLogger("runbook.engine")

#: seconds a step gets to stop after its timeout before it is abandoned
GRACE = 5.0


class RunFailed(RunbookError):
    """A step failed; ``rolled_back`` says whether the rollback ran and finished."""

    def __init__(self, run_id: str, step: str, message: str, rolled_back: bool | None) -> None:
        self.run_id, self.step, self.rolled_back = run_id, step, rolled_back
        #: the point of no return the rollback stopped at, if it did
        self.kept: str | None = None
        super().__init__(message)


@dataclass
class Options:
    kind: str = "run"  # or "rehearsal"
    rerun_interrupted: bool = False
    skip_interrupted: bool = False
    accept_changes: bool = False
    force_reason: str | None = None


def new_run_id(name: str, clock: Clock) -> str:
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{_random.token_hex(2)}"


def targets_lock_name(runbook: Runbook) -> str:
    digest = hashlib.sha256(json.dumps(runbook.targets, sort_keys=True, default=str)
                            .encode()).hexdigest()[:16]
    return f"targets:{digest}"


class Engine:
    def __init__(self, store: Store, runbook: Runbook, *, run_root: Path,
                 clock: Clock | None = None, registry: Registry | None = None,
                 environ: dict[str, str] | None = None,
                 emit: Callable[[str, dict[str, Any]], None] | None = None,
                 ask: Callable[[str], bool] | None = None,
                 gate: Any = None) -> None:
        self.store = store
        self.runbook = runbook
        self.run_root = run_root
        self.clock = clock or RealClock()
        self.registry = registry or default_registry()
        self.redactor = Redactor()
        self.resolver = SecretResolver(self.redactor, Path(runbook.path).parent, environ)
        self.emit_cb = emit
        self.ask = ask
        self.gate = gate
        self.stop_requests = 0
        self._messages: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._rows: dict[str, StepRow] = {}
        self._row_lock = threading.Lock()
        self.run_id = ""
        self.kind = "run"
        self.targets: dict[str, Any] = {}
        #: seconds a timed-out step gets to stop before it is abandoned
        self.grace = GRACE
        self._executor: ThreadPoolExecutor | None = None
        self._frontier = Frontier(runbook, {})
        self._fanouts: list[StepSpec] = []

    # -- public entry points ------------------------------------------------------------
    def preflight(self) -> None:
        """Resolve every secret reference once, before anything runs (exit 2 if missing)."""
        check_secrets(self.runbook, self.resolver)
        self.targets = self.resolver.resolve(self.runbook.targets)

    def start(self, options: Options, run_id: str | None = None) -> str:
        self.preflight()
        self.kind = options.kind
        self.run_id = run_id or new_run_id(self.runbook.name, self.clock)
        self._lock_targets()
        self.store.create_run(RunRow(
            run_id=self.run_id, runbook=self.runbook.name,
            path=os.path.abspath(self.runbook.path), digest=self.runbook.digest,
            text=self.runbook.text, kind=options.kind, state="created", created_at=self.stamp(),
            meta={"windows": [[w.start.isoformat(), w.end.isoformat(), w.rollback_reserve]
                              for w in self.runbook.windows],
                  "force": options.force_reason,
                  # references only (never resolved values): lets a rehearsal resume
                  # against the same targets it started with
                  "targets": self.runbook.targets}))
        self.emit("run_created", run_id=self.run_id, kind=options.kind)
        return self.run_id

    def execute(self) -> str:
        """Drive the run until it succeeds, fails (after rollback) or stops (resumable)."""
        with self.driving():
            return self._drive()

    @contextmanager
    def driving(self) -> Iterator[None]:
        """Hold the run's lock (one process drives a run) and clean up the workers after.
        A lock left by a dead process on this host is taken over."""
        self.store.acquire_lock(f"run:{self.run_id}", process_holder(self.run_id),
                                steal_if=lambda h: not holder_alive(h))
        try:
            yield
        finally:
            self.store.release_lock(f"run:{self.run_id}")
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    # -- helpers ------------------------------------------------------------------------
    def stamp(self) -> str:
        """Now, for stored timestamps: from the engine's clock, so a test's fake clock
        drives reports and history exactly as real time does."""
        return self.clock.now().astimezone(UTC).isoformat(timespec="microseconds")

    def _pool(self) -> ThreadPoolExecutor:
        # Workers are reused (a thread per step costs ~1 ms); spare workers cover steps
        # that were abandoned after ignoring their timeout.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.runbook.max_parallel + 8,
                                                thread_name_prefix="step")
        return self._executor

    def emit(self, event: str, **data: Any) -> None:
        if self.emit_cb is not None:
            self.emit_cb(event, {k: self.redactor.data(v) for k, v in data.items()})

    def _lock_targets(self) -> None:
        def finished(holder: dict[str, Any]) -> bool:
            other = self.store.find_run(str(holder.get("run")))
            return other is None or other.state in TERMINAL_RUN
        self.store.acquire_lock(targets_lock_name(self.runbook), {"run": self.run_id},
                                steal_if=finished)

    def _release_targets(self) -> None:
        self.store.release_lock(targets_lock_name(self.runbook), self.run_id)

    def crashpoint(self, key: str, trigger: str, when: str) -> None:
        """Fault injection for the crash tests: RUNBOOK_KILL_AT=key:trigger:before|after."""
        points = os.environ.get("RUNBOOK_KILL_AT")
        if points and f"{key}:{trigger}:{when}" in points.split(","):
            os.kill(os.getpid(), signal.SIGKILL)

    def _transition(self, row: StepRow, trigger: str, *, detail: dict[str, Any] | None = None,
                    **changes: Any) -> None:
        new_state = step_next(row.state, trigger)
        self.crashpoint(row.key, trigger, "before")
        with self._row_lock:
            from_state = row.state
            row.state = new_state
            for k, v in changes.items():
                setattr(row, k, self.redactor.data(v) if k in ("outputs", "record", "error")
                        else v)
            self.store.save_step(row, event=trigger, from_state=from_state,
                                 detail=self.redactor.data(detail or {}))
        if new_state in DONE and row.key == row.step_id:
            self._frontier.mark_done(row.key)
        self.crashpoint(row.key, trigger, "after")

    def _run_transition(self, trigger: str, detail: dict[str, Any] | None = None,
                        **fields: Any) -> str:
        run = self.store.get_run(self.run_id)
        new_state = run_next(run.state, trigger)
        self.store.set_run_state(self.run_id, new_state, event=f"run_{trigger}",
                                 detail=self.redactor.data(detail or {}), **fields)
        self.crashpoint("run", trigger, "after")
        return new_state

    def _row(self, key: str, step_id: str) -> StepRow:
        row = self._rows.get(key)
        if row is None:
            row = StepRow(run_id=self.run_id, key=key, step_id=step_id, state="pending")
            self._rows[key] = row
        return row

    def context(self, key: str, spec: StepSpec, cancel: threading.Event, item: Any = None,
                attempt: int = 1) -> StepContext:
        run_dir = self.run_root / self.run_id
        row = self._rows.get(key)

        def checkpoint(record: dict[str, Any]) -> None:
            if row is None:
                return
            with self._row_lock:
                row.record = self.redactor.data(record)
                self.store.save_step(row, event="checkpoint", from_state=row.state,
                                     detail={"keys": sorted(record)})

        approval = row.info.get("approval") if row else None
        return StepContext(run_id=self.run_id, step_id=key, run_dir=run_dir,
                           targets=self.targets, clock=self.clock,
                           log=logging.getLogger(f"runbook.step.{spec.id}"), cancelled=cancel,
                           rehearsal=self.kind == "rehearsal", attempt=attempt, item=item,
                           redact=self.redactor.text, on_checkpoint=checkpoint,
                           approval=approval, ask=self.ask)

    def prepare(self, spec: StepSpec, item: Any = None, uses: str | None = None,
                raw_with: dict[str, Any] | None = None) -> Prepared:
        ctx = template_context(self.runbook, self._rows, self.run_id,
                               self.kind == "rehearsal", item)
        return prepare(self.registry, uses or spec.uses,
                       spec.with_ if raw_with is None else raw_with, spec, ctx, self.resolver)

    # -- the driver ---------------------------------------------------------------------
    def _drive(self) -> str:
        self._rows = self.store.steps(self.run_id)
        run = self.store.get_run(self.run_id)
        if run.state in ("rolling_back", "rollback_failed"):
            raise StepFailed("this run is being rolled back; continue with: "
                             f"runbook rollback {self.run_id}")
        self._run_transition("start", started_at=run.started_at or self.stamp())
        self.emit("run_started", run_id=self.run_id)
        running: dict[str, Inflight] = {}
        failure: tuple[str, str] | None = None
        stopped: Stopped | None = None
        order = list(self.runbook.steps)
        self._frontier = Frontier(self.runbook, self._rows)
        self._fanouts = [s for s in order if s.for_each is not None]
        while True:
            if failure is None and stopped is None and not self.stop_requests:
                try:
                    self._launch_ready(order, running)
                except Stopped as exc:
                    stopped = exc
                except StepError as exc:  # a step could not even be prepared
                    failure = (getattr(exc, "step_key", "?"), str(exc))
                    self._cancel_all(running)
            if not running:
                if failure is not None:
                    return self._fail(*failure)
                if stopped is not None or self.stop_requests:
                    self._run_transition("pause", {"reason": str(stopped or "interrupted")})
                    raise stopped or Interrupted(
                        f"stopped by the operator; resume with: runbook resume {self.run_id}")
                if self._frontier.all_done:
                    self._run_transition("succeed", finished_at=self.stamp())
                    self._release_targets()
                    self.emit("run_succeeded", run_id=self.run_id)
                    return "succeeded"
                if not self._anything_ready():
                    raise StepFailed("no step can start although the run is not finished "
                                     "(a dependency failed earlier?)")
            if self.stop_requests > 1:
                self._cancel_all(running)
            if self.gate is not None and failure is None:
                verdict = self.gate.tick(self, running)
                if verdict is not None:
                    action, message = verdict
                    if action == "rollback":
                        failure = ("window", message)
                        self._cancel_all(running)
                    elif action == "pause" and stopped is None:
                        stopped = WindowClosed(message)
            timeout = next_deadline(self, running)
            try:
                kind, key, payload = self._messages.get(timeout=timeout)
            except queue.Empty:
                check_timeouts(self, running)
                continue
            inflight = running.pop(key, None)
            if inflight is None or inflight.abandoned:
                continue
            outcome = settle(self, inflight, kind, payload)
            if outcome == "failed" and failure is None:
                error = self._rows[key].error
                failure = (key, error["message"] if error else "failed")
                self._cancel_all(running)
            elif outcome == "paused" and stopped is None:
                stopped = payload
            self._finish_parents(order)

    def _anything_ready(self) -> bool:
        specs = self.runbook.by_id
        return any(self._ready(specs[c]) for c in self._frontier)

    def _ready(self, spec: StepSpec) -> bool:
        row = self._rows.get(spec.id)
        if row is not None and row.state != "pending":
            return spec.for_each is not None and row.state == "running"
        return all(self._rows.get(n) is not None and self._rows[n].state in DONE
                   for n in spec.needs)

    def _launch_ready(self, order: list[StepSpec], running: dict[str, Inflight]) -> None:
        specs = self.runbook.by_id
        for step_id in self._frontier:
            spec = specs[step_id]
            if len(running) >= self.runbook.max_parallel:
                return
            if not self._ready(spec):
                continue
            row = self._row(spec.id, spec.id)
            if row.state == "pending":
                if spec.when is not None:
                    ctx = template_context(self.runbook, self._rows, self.run_id,
                                           self.kind == "rehearsal")
                    try:
                        go = template.truthy(spec.when, ctx)
                    except template.TemplateProblem as exc:
                        raise _keyed(StepFailed(f"step '{spec.id}': {exc}"), spec.id) from None
                    if not go:
                        self._transition(row, "skip", detail={"reason": "when is false"},
                                         finished_at=self.stamp())
                        self.emit("step_skipped", key=spec.id)
                        continue
                self._gate(spec)
            if spec.for_each is not None:
                self._launch_items(spec, row, running)
            else:
                self._launch(spec.id, spec, row, running)

    def _gate(self, spec: StepSpec) -> None:
        """Window and go/no-go checks before a step starts (raise Stopped to pause)."""
        if self.gate is not None:
            self.gate.before_step(self, spec)
            return
        if spec.phase == "downtime" and self.runbook.windows:
            now = self.clock.now()
            if current_window(self.runbook.windows, now) is None:
                upcoming = next_window(self.runbook.windows, now)
                when = (f"the window opens at {upcoming.start.isoformat()}" if upcoming
                        else "no window is left")
                raise WindowClosed(f"step '{spec.id}' is a downtime step and {when}; "
                                   f"resume with: runbook resume {self.run_id}")

    def _launch_items(self, spec: StepSpec, parent: StepRow,
                      running: dict[str, Inflight]) -> None:
        if parent.state == "pending":
            ctx = template_context(self.runbook, self._rows, self.run_id,
                                   self.kind == "rehearsal")
            try:
                items = template.render(spec.for_each, ctx)
            except template.TemplateProblem as exc:
                raise _keyed(StepFailed(f"step '{spec.id}': for_each: {exc}"), spec.id) from None
            if not isinstance(items, list):
                raise _keyed(StepFailed(f"step '{spec.id}': for_each gave {type(items).__name__},"
                                        " not a list"), spec.id)
            self._transition(parent, "start", started_at=self.stamp(),
                             info={"items": items, "parent": True})
        items = parent.info.get("items", [])
        limit = spec.max_parallel or len(items) or 1
        active = sum(1 for k in running if k.startswith(spec.id + "["))
        for index, item in enumerate(items):
            if len(running) >= self.runbook.max_parallel or active >= limit:
                return
            key = item_key(spec.id, index)
            row = self._row(key, spec.id)
            if row.state == "pending" and key not in running:
                self._launch(key, spec, row, running, item=item)
                active += 1

    def _finish_parents(self, order: list[StepSpec]) -> None:
        for spec in self._fanouts:
            parent = self._rows.get(spec.id)
            if parent is None or parent.state != "running":
                continue
            items = parent.info.get("items", [])
            rows = [self._rows.get(item_key(spec.id, i)) for i in range(len(items))]
            if all(r is not None and r.state in DONE for r in rows):
                self._transition(parent, "succeed", finished_at=self.stamp(),
                                 outputs={"items": [r.outputs for r in rows if r]})

    def _launch(self, key: str, spec: StepSpec, row: StepRow, running: dict[str, Inflight],
                item: Any = None) -> None:
        cancel = threading.Event()
        try:
            prepared = self.prepare(spec, item)
        except RunbookError as exc:
            self._transition(row, "start", started_at=self.stamp(), attempt=1)
            self._transition(row, "fail", finished_at=self.stamp(),
                             error=error_data(exc))
            self.emit("step_failed", key=key, message=str(exc))
            raise _keyed(StepFailed(str(exc)), key) from None
        self._transition(row, "start", started_at=self.stamp(), attempt=row.attempt + 1)
        now = self.clock.monotonic()
        inflight = Inflight(key, spec, cancel, now,
                            now + spec.timeout if spec.timeout is not None else None)
        running[key] = inflight
        self.emit("step_started", key=key, uses=spec.uses)
        self._pool().submit(work, self, inflight, prepared, item)

    def _cancel_all(self, running: dict[str, Inflight]) -> None:
        for inflight in running.values():
            inflight.cancel.set()

    def _fail(self, key: str, message: str) -> str:
        from runbook.engine.rollback import Rollback

        self.emit("run_failing", key=key, message=message)
        if self.runbook.on_failure == "rollback":
            outcome = Rollback(self).run(reason=f"step '{key}' failed")
            failed = RunFailed(self.run_id, key, message, rolled_back=True)
            failed.kept = outcome.stopped_at
            raise failed
        self._run_transition("fail", {"step": key, "message": message}, finished_at=self.stamp())
        raise RunFailed(self.run_id, key, message, rolled_back=None)


def _keyed(exc: StepError, key: str) -> StepError:
    exc.step_key = key  # type: ignore[attr-defined]
    return exc




def check_secrets(runbook: Runbook, resolver: SecretResolver) -> None:
    """Every ${env:..} / ${file:..} in targets and steps resolves, or ValidationFailed
    names each one that does not at its FILE:LINE:COL."""
    problems = []
    for path, text in _references(runbook):
        for match in REFERENCE.finditer(text):
            try:
                resolver.lookup(match.group(1), match.group(2))
            except SecretUnavailable as exc:
                if runbook.located is None:
                    raise
                problems.append(runbook.located.at(path, str(exc)))
    if problems:
        raise ValidationFailed(problems)


def _references(runbook: Runbook) -> list[tuple[tuple[Any, ...], str]]:
    out: list[tuple[tuple[Any, ...], str]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, str):
            if REFERENCE.search(value):
                out.append((path, value))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, path + (i,))

    walk(runbook.targets, ("targets",))
    for spec in runbook.steps:
        walk(spec.with_, ("steps", spec.index, "with"))
    return out


def attach(engine: Engine, run: RunRow) -> None:
    """Point an engine at an existing run (for resume, rollback, approve)."""
    engine.run_id = run.run_id
    engine.kind = run.kind
    engine.preflight()


def resume(engine: Engine, options: Options) -> str:
    from runbook.engine.resume import settle_interrupted

    run = engine.store.get_run(engine.run_id)
    if run.state in TERMINAL_RUN:
        return run.state
    with engine.driving():
        engine._lock_targets()
        engine._rows = engine.store.steps(engine.run_id)
        if run.state in ("rolling_back", "rollback_failed"):
            from runbook.engine.rollback import Rollback

            Rollback(engine).run(reason="resumed rollback")
            return "rolled_back"
        settle_interrupted(engine, options)
        return engine._drive()


def rollback(engine: Engine, to: str | None = None,
             through_point_of_no_return: bool = False) -> Any:
    from runbook.engine.rollback import Rollback

    with engine.driving():
        return Rollback(engine).run(reason="requested by the operator", to=to,
                                    through_point_of_no_return=through_point_of_no_return)
