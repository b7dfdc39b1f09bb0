"""Progress for people.

:class:`Printer` writes one line per event (logs, pipes, CI). :class:`LiveView`, used on
a terminal, keeps the same lines scrolling above a status block that is redrawn in place:
every step's state and elapsed time, the window countdown and the latest forecast.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from runbook.duration import format_duration
from runbook.engine.forecast import hms
from runbook.model import Runbook

SYMBOLS = {"step_started": "▶", "step_succeeded": "✔", "step_failed": "✘",
           "step_skipped": "↷", "step_cancelled": "■", "step_retry": "↻",
           "step_reverting": "↶", "step_reverted": "↶", "step_revert_failed": "✘",
           "step_not_undone": "·", "step_paused": "⏸", "step_timeout": "⏱"}

#: plain output prints a waiting countdown only at these minutes before the window opens,
#: so an hour of waiting is a handful of lines, not sixty
COUNTDOWN_MARKS = (60, 30, 15, 10, 5, 2, 1)


class Printer:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._marks_shown: set[int] = set()
        self._counting = False

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        line = self.line(event, data)
        if line:
            stamp = datetime.now().strftime("%H:%M:%S")
            print(f"{stamp} {line}", file=self.stream, flush=True)

    def line(self, event: str, d: dict[str, Any]) -> str | None:
        key = d.get("key", "")
        sym = SYMBOLS.get(event, " ")
        if event == "run_created":
            return None
        if event == "run_started":
            return f"  run {d['run_id']} started"
        if event == "step_started":
            return f"{sym} {key} ({d.get('uses')})"
        if event == "step_succeeded":
            what = "changed" if d.get("changed") else "unchanged"
            return f"{sym} {key} {what} in {format_duration(d.get('seconds') or 0)}"
        if event in ("step_failed", "step_cancelled", "step_revert_failed", "step_paused"):
            word = {"step_failed": "failed", "step_cancelled": "cancelled",
                    "step_revert_failed": "revert failed", "step_paused": "waits"}[event]
            return f"{sym} {key} {word}: {d.get('message')}"
        if event == "step_skipped":
            return f"{sym} {key} skipped"
        if event == "step_retry":
            return (f"{sym} {key} attempt {d['attempt']} failed ({d['message']}); retrying in "
                    f"{format_duration(d['pause'])}")
        if event == "step_timeout":
            return f"{sym} {key} hit its timeout; stopping it"
        if event == "step_reverting":
            return f"{sym} {key} reverting"
        if event == "step_reverted":
            return f"{sym} {key} reverted in {format_duration(d.get('seconds') or 0)}"
        if event == "step_not_undone":
            return f"{sym} {key} not undone: {d['why']}"
        if event == "rollback_started":
            return f"↶ rolling back ({d['reason']})"
        if event == "rollback_finished":
            return f"↶ rollback finished: {len(d['reverted'])} reverted, " \
                   f"{len(d['not_undone'])} not undone"
        if event == "run_succeeded":
            return f"✔ run {d['run_id']} succeeded"
        if event in ("notice", "decision"):
            return f"! {d.get('message')}"
        if event == "window_wait":
            return self._countdown(d)
        return None

    def _countdown(self, d: dict[str, Any]) -> str | None:
        minutes = int(float(d.get("seconds") or 0) // 60) + 1
        due = [m for m in COUNTDOWN_MARKS if minutes <= m and m not in self._marks_shown]
        if self._counting and not due:
            return None
        self._counting = True  # the first notice always shows: it says what is awaited
        self._marks_shown.update(m for m in COUNTDOWN_MARKS if minutes <= m)
        return f"⏳ {d.get('message')}"


class LiveView(Printer):
    """A status block under the scrolling event lines, redrawn in place once a second."""

    def __init__(self, runbook: Runbook, stream: TextIO | None = None,
                 now: Callable[[], datetime] | None = None, refresh: float = 1.0) -> None:
        super().__init__(stream)
        self.runbook = runbook
        self.now = now or (lambda: datetime.now(UTC))
        self.states: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.took: dict[str, float] = {}
        self.forecast: dict[str, Any] | None = None
        self.opens_at: str | None = None
        self._drawn = 0
        self._last = ""
        self._lock = threading.Lock()
        self._paused = False
        self._stop = threading.Event()
        self._refresh = refresh
        self._thread: threading.Thread | None = None

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._track(event, data)
            line = self.line(event, data)
            self._erase()
            if line:
                stamp = datetime.now().strftime("%H:%M:%S")
                self.stream.write(f"{stamp} {line}\n")
            if event in ("run_succeeded", "rollback_finished"):
                self._stop.set()
            else:
                self._draw()
            self.stream.flush()
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._tick, name="live-view", daemon=True)
            self._thread.start()

    def wrap_ask(self, ask: Callable[[str], bool]) -> Callable[[str], bool]:
        """Questions on the terminal need the screen: hide the block while asking."""
        def asking(prompt: str) -> bool:
            with self._lock:
                self._erase()
                self._paused = True
                self.stream.flush()
            try:
                return ask(prompt)
            finally:
                with self._lock:
                    self._paused = False
        return asking

    def _tick(self) -> None:
        while not self._stop.wait(self._refresh):
            with self._lock:
                if not self._active():
                    # the run stopped between events: the CLI may be printing why,
                    # and redrawing now would overwrite its lines
                    continue
                self._erase()
                self._draw()
                self.stream.flush()

    def _active(self) -> bool:
        return self._last == "window_wait" or any(
            s in ("running", "reverting") for s in self.states.values())

    def _track(self, event: str, d: dict[str, Any]) -> None:
        self._last = event
        key = str(d.get("key", ""))
        states = {"step_started": "running", "step_succeeded": "succeeded",
                  "step_failed": "failed", "step_skipped": "skipped",
                  "step_cancelled": "cancelled", "step_paused": "waiting",
                  "step_reverting": "reverting", "step_reverted": "reverted",
                  "step_revert_failed": "revert failed"}
        if event in states:
            self.states[key] = states[event]
            if event in ("step_started", "step_reverting"):
                self.started[key] = time.monotonic()
            elif key in self.started:
                self.took[key] = time.monotonic() - self.started.pop(key)
        elif event == "forecast":
            self.forecast = d
        elif event == "window_wait":
            self.opens_at = str(d.get("opens_at"))

    def block(self) -> list[str]:
        """The status block's lines (a method of its own so tests can read it)."""
        lines = ["─" * 60]
        for spec in self.runbook.steps:
            keys = [k for k in self.states if k == spec.id or k.startswith(spec.id + "[")]
            if not keys:
                lines.append(f"  {'·':<2}{spec.id:<34} pending")
                continue
            for k in keys:
                if k == spec.id and len(keys) > 1:
                    continue
                if k in self.started:
                    took = hms(time.monotonic() - self.started[k])
                elif k in self.took:
                    took = hms(self.took[k])
                else:
                    took = ""
                lines.append(f"  {SYMBOLS.get(_event_of(self.states[k]), '·'):<2}"
                             f"{k:<34} {self.states[k]:<14} {took}")
        lines.append(self._window_line())
        if self.forecast is not None:
            f = self.forecast
            verdict = "fits" if f.get("fits") else "DOES NOT FIT"
            lines.append(f"  forecast: needs {hms(float(f['needed']))} of "
                         f"{hms(float(f['usable']))} usable: {verdict}")
        return lines

    def _window_line(self) -> str:
        now = self.now()
        if self.forecast is not None:
            end = datetime.fromisoformat(str(self.forecast["window_end"]))
            return f"  window closes in {hms((end - now).total_seconds())}"
        if self.opens_at:
            start = datetime.fromisoformat(self.opens_at)
            if start > now:
                return f"  window opens in {hms((start - now).total_seconds())}"
        for w in self.runbook.windows:
            if w.start > now:
                return f"  window opens in {hms((w.start - now).total_seconds())}"
            if w.contains(now):
                return f"  window closes in {hms((w.end - now).total_seconds())}"
        return "  no maintenance window" if not self.runbook.windows else "  window closed"

    def _erase(self) -> None:
        if self._drawn:
            # cursor up to the first line of the block, then clear to the end of the screen
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        if self._paused or self._stop.is_set():
            return
        # a wrapped line would make the next erase move up too few lines: cut to fit
        width = max(20, shutil.get_terminal_size().columns - 1)
        lines = [line[:width] for line in self.block()]
        self.stream.write("\n".join(lines) + "\n")
        self._drawn = len(lines)


def _event_of(state: str) -> str:
    return {"running": "step_started", "succeeded": "step_succeeded", "failed": "step_failed",
            "skipped": "step_skipped", "cancelled": "step_cancelled", "waiting": "step_paused",
            "reverting": "step_reverting", "reverted": "step_reverted"}.get(state, "")


def printer_for(runbook: Runbook, stream: TextIO | None = None) -> Printer:
    """The live view on a terminal, plain lines anywhere else."""
    out = stream or sys.stdout
    if out.isatty():
        return LiveView(runbook, out)
    return Printer(out)
