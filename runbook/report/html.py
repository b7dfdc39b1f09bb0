"""The HTML report: one self-contained file (inline CSS and SVG, nothing fetched) that
can be attached to a change ticket and opened years later, offline."""

from __future__ import annotations

from html import escape
from typing import Any

from runbook.report.compare import compare
from runbook.report.gantt import gantt, needs_zoom
from runbook.report.render import dur, sections, signed, summary

CSS = """
body { font-family: sans-serif; margin: 24px; color: #212121; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.kind { display: inline-block; padding: 2px 8px; border-radius: 4px; font-weight: bold; }
.kind.rehearsal { background: #fff3e0; color: #e65100; }
.kind.run { background: #e8f5e9; color: #1b5e20; }
ul.summary { padding-left: 18px; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #e0e0e0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.regression { color: #c62828; font-weight: bold; }
pre { background: #fafafa; border: 1px solid #e0e0e0; padding: 8px; font-size: 12px;
      overflow-x: auto; }
svg { max-width: 100%; height: auto; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
            vertical-align: middle; }
"""

LEGEND = [("#2e7d32", "succeeded"), ("#c62828", "failed"), ("#f9a825", "waiting/pending"),
          ("#ffcc80", "waited (approval, window)"), ("#6a1b9a", "reverted"),
          ("#e3f2fd", "maintenance window"), ("#bbdefb", "rollback reserve")]


def _table(header: list[str], rows: list[list[str]], row_ids: list[str] | None = None,
           classes: list[list[str]] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    for i, r in enumerate(rows):
        rid = f' id="{escape(row_ids[i])}"' if row_ids else ""
        cells = []
        for j, c in enumerate(r):
            cls = classes[i][j] if classes else ""
            cells.append(f'<td{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>'
                         f"{escape(c)}</td>")
        out.append(f"<tr{rid}>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _decisions(report: dict[str, Any]) -> str:
    """Every go/no-go with the arithmetic exactly as it was printed at the time."""
    blocks = []
    for d in report["decisions"]:
        if d.get("arithmetic"):
            verdict = d["verdict"]
            if d.get("forced"):
                f = d["forced"]
                verdict = f"forced by {f['by']} at {f['at']}: {f['reason']}"
            blocks.append(f"<pre>{escape(chr(10).join(d['arithmetic']))}\n"
                          f"verdict: {escape(verdict)}</pre>")
    return "".join(blocks)


def _compare(report: dict[str, Any], others: list[dict[str, Any]]) -> str:
    data = compare(report, others)
    header = ["step", f"{report['run_id']} ({report['kind']})"]
    for o in others:
        header += [f"{o['run_id']} ({o['kind']})", "delta"]
    rows, classes = [], []
    for r in data["steps"]:
        row, cls = [r["key"], dur(r["seconds"])], ["", ""]
        for c in r["baselines"]:
            pct = f" ({c['ratio'] * 100:+.0f}%)" if c["ratio"] is not None else ""
            row += [dur(c["seconds"]), signed(c["delta_seconds"]) + pct
                    + (" regression" if c["regression"] else "")]
            cls += ["", "regression" if c["regression"] else ""]
        rows.append(row)
        classes.append(cls)
    note = (f"<p>Regressions (over {data['threshold'] * 100:.0f}% slower): "
            f"{escape(', '.join(data['regressions']) or 'none')}</p>")
    return "<h2>Compared runs</h2>" + _table(header, rows, classes=classes) + note


def html(report: dict[str, Any], compare_reports: list[dict[str, Any]] | None = None) -> str:
    kind = "rehearsal" if report.get("rehearsal") else "run"
    lines = summary(report)
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>Run {escape(report['run_id'])}</title><style>{CSS}</style></head><body>",
             (f"<h1>Run {escape(report['run_id'])} <span class=\"kind {kind}\">"
             f"{'REHEARSAL' if kind == 'rehearsal' else 'REAL RUN'}</span></h1>"),
             "<ul class=\"summary\">" + "".join(f"<li>{escape(line)}</li>" for line in lines)
             + "</ul>",
             "<h2>Timeline</h2>", gantt(report),
             *(["<h2>Timeline of the run alone</h2>", gantt(report, zoom=True)]
               if needs_zoom(report) else []),
             "<div class=\"legend\">" + "".join(f"<span><i style=\"background:{c}\"></i>"
                                                f"{escape(t)}</span>" for c, t in LEGEND)
             + "</div>"]
    for w in report["windows"]:
        parts.append(f"<p class=\"window-note\" id=\"window-note-{w['index']}\">window "
                     f"{w['index'] + 1}: {escape(w['start'])} .. {escape(w['end'])}, rollback "
                     f"reserve {escape(dur(w['rollback_reserve']))}"
                     f"{' (simulated for the rehearsal)' if w['simulated'] else ''}</p>")
    for title, header, rows, notes in sections(report):
        ids = ([f"step-{r[0]}" for r in rows] if title == "Steps" else None)
        parts.append(f"<h2>{escape(title)}</h2>" + _table(header, rows, ids))
        parts += [f"<p>{escape(n)}</p>" for n in notes]
        if title == "Decisions":
            parts.append(_decisions(report))
    if compare_reports:
        parts.append(_compare(report, compare_reports))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
