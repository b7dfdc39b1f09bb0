"""Text, Markdown and JSON renderings of a run report.

Text and Markdown share one list of sections, each a title and rows of cells, so the two
never disagree about what a report contains.
"""

from __future__ import annotations

import json
from typing import Any

from runbook.engine.forecast import hms

Section = tuple[str, list[str], list[list[str]], list[str]]  # title, header, rows, notes


def dur(value: float | None) -> str:
    return hms(value) if value is not None else "-"


def signed(value: float | None) -> str:
    if value is None:
        return "-"
    return ("+" if value >= 0 else "-") + hms(abs(value))


def summary(report: dict[str, Any]) -> list[str]:
    kind = "REHEARSAL" if report.get("rehearsal") else "real run"
    lines = [f"run {report['run_id']} ({kind}) of {report['runbook']}: {report['state']}",
             f"started {report['started_at'] or '-'}, finished {report['finished_at'] or '-'}",
             (f"duration {dur(report['seconds'])} (engine active {dur(report['active_seconds'])}"
             f", resumed {report['resumes']} time{'s' if report['resumes'] != 1 else ''})"),
             f"downtime {dur(report['downtime']['seconds'])}"
             + (f" ({report['downtime']['started_at']} .. {report['downtime']['finished_at']})"
                if report["downtime"]["started_at"] else "")]
    w = report.get("window")
    if w:
        sim = " (simulated for the rehearsal)" if w["simulated"] else ""
        lines.append(f"window {w['index'] + 1}{sim}: {w['start']} .. {w['end']}, reserve "
                     f"{dur(w['rollback_reserve'])}; used {dur(w['used_seconds'])}, left "
                     f"{signed(w['left_seconds'])}" + ("  OVERRAN" if w["overran"] else ""))
    if report.get("point_of_no_return"):
        p = report["point_of_no_return"]
        lines.append(f"point of no return: '{p['step']}' at {p['at']}")
    cp = report["critical_path"]
    lines.append(f"critical path planned {dur(cp['planned']['seconds'])}: "
                 f"{' -> '.join(cp['planned']['steps']) or '-'}")
    lines.append(f"critical path actual  {dur(cp['actual']['seconds'])}: "
                 f"{' -> '.join(cp['actual']['steps']) or '-'}")
    if report.get("force"):
        lines.append(f"started with --force: {report['force']}")
    return lines


def sections(report: dict[str, Any]) -> list[Section]:
    out: list[Section] = []
    rows = []
    notes = []
    for s in report["steps"]:
        if s["parent"]:
            continue
        flags = []
        if s["point_of_no_return"]:
            flags.append("PONR")
        if s["phase"]:
            flags.append(s["phase"])
        if s["recovered"]:
            flags.append("recovered")
        rows.append([s["key"], s["state"], dur(s["planned_seconds"]), dur(s["seconds"]),
                     signed(s["delta_seconds"]), str(s["retries"]),
                     dur(s["wait_seconds"] + s["retry_wait_seconds"]), " ".join(flags)])
        if s["error"]:
            notes.append(f"{s['key']}: {s['error']}")
        elif s.get("summary"):
            notes.append(f"{s['key']}: {s['summary']}")
    out.append(("Steps", ["step", "state", "planned", "actual", "delta", "retries", "waited",
                          ""], rows, notes))
    decisions = []
    for d in report["decisions"]:
        f = d.get("forecast") or {}
        if d["kind"] == "go_no_go":
            forced = d.get("forced")
            what = (f"FORCED by {forced['by']} at {forced['at']}: {forced['reason']}"
                    if forced else d["verdict"])
            decisions.append([d["at"], f"go/no-go {f.get('at', d.get('step'))}",
                              (f"needs {dur(f.get('needed'))} = path {dur(f.get('remaining'))} "
                              f"+ rollback {dur(f.get('rollback'))}; usable "
                              f"{dur(f.get('usable'))} = left {dur(f.get('left'))} - reserve "
                              f"{dur(f.get('reserve'))}"), what])
        elif d["kind"] == "overrun":
            decisions.append([d["at"], f"overrun of {', '.join(d['steps'])}",
                              (f"rollback {dur(d['rollback'])} would end {dur(d['late'])} after "
                              f"{d['window_end']}"), d["action"]])
        else:
            decisions.append([d["at"], f"approval deadline of '{d['step']}'",
                              f"deadline {d['deadline']}", d["verdict"]])
    if decisions:
        out.append(("Decisions", ["at", "decision", "numbers", "verdict"], decisions, []))
    approvals = [[a["step"], str(a.get("by")), str(a.get("at")), str(a.get("via", "")),
                  a["state"]] for a in report["approvals"]]
    if approvals:
        out.append(("Approvals", ["step", "by", "at", "via", "state"], approvals, []))
    rb = report["rollback"]
    if rb["started_at"] or rb["reverted"]:
        out.append(("Rollback", ["step", "revert took", "reverted at"],
                    [[r["key"], dur(r["seconds"]), str(r["reverted_at"])] for r in rb["reverted"]],
                    [(f"rollback {rb['started_at']} .. {rb['finished_at'] or '-'} "
                     f"({dur(rb['seconds'])})")]
                    + [f"not undone: {n['key']} ({n['why']})" for n in rb["not_undone"]]))
    return out


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip()] + [fmt.format(*r).rstrip() for r in rows]


def text(report: dict[str, Any]) -> str:
    lines = summary(report)
    for title, header, rows, notes in sections(report):
        lines += ["", f"{title}:"] + ["  " + line for line in table(header, rows)]
        lines += ["  " + n for n in notes]
    return "\n".join(lines) + "\n"


def _cell(value: str) -> str:
    return value.replace("|", "\\|")


def markdown(report: dict[str, Any]) -> str:
    head = summary(report)
    lines = [f"# Run `{report['run_id']}`", ""] + [f"- {line}" for line in head[1:]]
    lines.insert(2, f"- **{'Rehearsal' if report.get('rehearsal') else 'Real run'}** of "
                    f"`{report['runbook']}`, outcome **{report['state']}**")
    for title, header, rows, notes in sections(report):
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
        if notes:
            lines += [""] + [f"- {_cell(n)}" for n in notes]
        if title == "Decisions":  # the arithmetic as printed, for the change board
            for d in report["decisions"]:
                if d.get("arithmetic"):
                    lines += ["", "```", *d["arithmetic"], f"verdict: {d['verdict']}", "```"]
    return "\n".join(lines) + "\n"


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
