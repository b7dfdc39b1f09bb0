"""Text, Markdown and JSON renderings of a run report."""

from __future__ import annotations

import json
from typing import Any

from runbook.duration import format_duration


def _dur(value: float | None) -> str:
    return format_duration(value) if value is not None else "-"


def text(report: dict[str, Any]) -> str:
    lines = [f"run {report['run_id']} ({report['kind']}) of {report['runbook']}: "
             f"{report['state']}",
             f"duration {_dur(report['seconds'])}, downtime {_dur(report['downtime_seconds'])}",
             "",
             f"{'step':<32} {'state':<14} {'planned':>8} {'actual':>8} {'tries':>5}"]
    for s in report["steps"]:
        if s["parent"]:
            continue
        mark = " (recovered)" if s["recovered"] else ""
        lines.append(f"{s['key']:<32} {s['state']:<14} {_dur(s['estimate']):>8} "
                     f"{_dur(s['seconds']):>8} {s['attempts'] or 0:>5}{mark}")
        if s["error"]:
            lines.append(f"    error: {s['error']}")
    for r in report["rollback"]:
        if r["event"] == "not_undone":
            lines.append(f"not undone: {r['key']} ({r['detail'].get('why')})")
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Run `{report['run_id']}`", "",
             f"- runbook: `{report['runbook']}` ({report['kind']})",
             f"- outcome: **{report['state']}**",
             f"- duration: {_dur(report['seconds'])}; downtime: "
             f"{_dur(report['downtime_seconds'])}", "",
             "| step | state | planned | actual | attempts |", "|---|---|---:|---:|---:|"]
    for s in report["steps"]:
        if not s["parent"]:
            lines.append(f"| `{s['key']}` | {s['state']} | {_dur(s['estimate'])} | "
                         f"{_dur(s['seconds'])} | {s['attempts'] or 0} |")
    return "\n".join(lines) + "\n"


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
