"""Progress lines for people: one line per event, timestamps on the left."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO

from runbook.duration import format_duration

SYMBOLS = {"step_started": "▶", "step_succeeded": "✔", "step_failed": "✘",
           "step_skipped": "↷", "step_cancelled": "■", "step_retry": "↻",
           "step_reverting": "↶", "step_reverted": "↶", "step_revert_failed": "✘",
           "step_not_undone": "·", "step_paused": "⏸", "step_timeout": "⏱"}


class Printer:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

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
        return None
