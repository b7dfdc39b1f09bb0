"""Step-by-step comparison of a run with other runs (rehearsals or the real run).

The run the report is about is the subject; each other run is a baseline. A step of the
subject that took more than 25% longer than in a baseline is a regression: that is the
step to look at before the next window.
"""

from __future__ import annotations

from typing import Any

from runbook.report.render import dur, signed, table

#: slower than the baseline by more than this fraction is flagged
REGRESSION = 0.25


def _label(report: dict[str, Any]) -> str:
    return f"{report['run_id']} ({'rehearsal' if report.get('rehearsal') else 'run'})"


def _seconds(report: dict[str, Any]) -> dict[str, float | None]:
    return {s["key"]: s["seconds"] for s in report["steps"] if not s["parent"]}


def compare(report: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """Deltas per step and per baseline, as data (the JSON report's ``compare`` field)."""
    mine = _seconds(report)
    theirs = [_seconds(o) for o in others]
    keys = list(mine)
    for t in theirs:  # steps only a baseline ran still get a row
        keys += [k for k in t if k not in keys]
    rows = []
    for key in keys:
        cells = []
        for base in theirs:
            a, b = mine.get(key), base.get(key)
            delta = a - b if a is not None and b is not None else None
            ratio = (a / b - 1.0) if a is not None and b else None
            cells.append({"seconds": b, "delta_seconds": delta, "ratio": ratio,
                          "regression": ratio is not None and ratio > REGRESSION})
        rows.append({"key": key, "seconds": mine.get(key), "baselines": cells,
                     "regression": any(c["regression"] for c in cells)})
    totals = []
    for o in others:
        totals.append({"run_id": o["run_id"], "kind": o["kind"], "state": o["state"],
                       "seconds": o["seconds"], "downtime_seconds": o["downtime_seconds"]})
    return {"subject": report["run_id"], "threshold": REGRESSION, "runs": totals,
            "steps": rows, "regressions": [r["key"] for r in rows if r["regression"]]}


def compare_text(report: dict[str, Any], others: list[dict[str, Any]]) -> str:
    data = compare(report, others)
    header = ["step", _label(report)]
    for o in others:
        header += [_label(o), "delta"]
    rows = []
    for r in data["steps"]:
        row = [r["key"], dur(r["seconds"])]
        for c in r["baselines"]:
            pct = f" ({c['ratio'] * 100:+.0f}%)" if c["ratio"] is not None else ""
            row += [dur(c["seconds"]), signed(c["delta_seconds"]) + pct
                    + (" REGRESSION" if c["regression"] else "")]
        rows.append(row)
    total = ["(whole run)", dur(report["seconds"])]
    down = ["(downtime)", dur(report["downtime_seconds"])]
    for o in others:
        for line, field in ((total, "seconds"), (down, "downtime_seconds")):
            a, b = report[field], o[field]
            line += [dur(b), signed(a - b) if a is not None and b is not None else "-"]
    lines = [(f"compared with {', '.join(_label(o) for o in others)} "
             f"(regression: over {REGRESSION * 100:.0f}% slower):")]
    lines += ["  " + line for line in table(header, rows + [total, down])]
    if data["regressions"]:
        lines.append(f"  {len(data['regressions'])} regression"
                     f"{'s' if len(data['regressions']) != 1 else ''}: "
                     f"{', '.join(data['regressions'])}")
    else:
        lines.append("  no regressions")
    return "\n".join(lines) + "\n"
