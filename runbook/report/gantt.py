"""An SVG timeline of a run: one bar per step from its stored start and end, the
maintenance window (with its rollback reserve) behind the bars, and the point of no
return as a line. Plain SVG text, no scripts, so the file works offline and in print.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from html import escape
from typing import Any

from runbook.report.timing import ts

LABEL_W, BAR_W, ROW_H, TOP, BOTTOM = 260, 860, 22, 44, 30
COLORS = {"succeeded": "#2e7d32", "failed": "#c62828", "cancelled": "#8d6e63",
          "skipped": "#9e9e9e", "running": "#1565c0", "pending": "#f9a825",
          "reverted": "#6a1b9a", "reverting": "#6a1b9a", "revert_failed": "#c62828"}
#: a window further than this from the run's own times is listed, not drawn: a bar chart
#: spanning a week would squash every step into a hairline
NEAR = timedelta(hours=24)
TICKS = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def _bars(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in report["steps"]:
        if s["parent"]:
            continue
        start, end = ts(s["started_at"]), ts(s["finished_at"])
        first = ts(s["first_started_at"])
        reverted = ts(s["reverted_at"])
        revert_from = (reverted - timedelta(seconds=float(s["revert_seconds"] or 0))
                       if reverted else None)
        out.append({"key": s["key"], "state": s["state"], "start": start, "end": end,
                    "wait_from": first if first and start and first < start else None,
                    "revert": (revert_from, reverted) if reverted else None,
                    "ponr": s["point_of_no_return"]})
    return out


def _span(report: dict[str, Any], bars: list[dict[str, Any]],
          windows: bool = True) -> tuple[datetime, datetime] | None:
    moments = [m for b in bars for m in (b["start"], b["end"], b["wait_from"]) if m]
    moments += [m for b in bars if b["revert"] for m in b["revert"] if m]
    if not moments:
        return None
    lo, hi = min(moments), max(moments)
    for w in report["windows"] if windows else []:
        ws, we = ts(w["start"]), ts(w["end"])
        if ws and we and ws - NEAR <= hi and we + NEAR >= lo:
            lo, hi = min(lo, ws), max(hi, we)
    if hi <= lo:
        hi = lo + timedelta(seconds=1)
    return lo, hi


def _tz(report: dict[str, Any]) -> tzinfo | None:
    w = report.get("window")
    start = ts(w["start"]) if w else None
    return start.tzinfo if start else None


def needs_zoom(report: dict[str, Any]) -> bool:
    """True when the run is a sliver of the window (a fast rehearsal): then a second
    timeline fitted to the run is worth drawing."""
    bars = _bars(report)
    whole, run = _span(report, bars), _span(report, bars, windows=False)
    if whole is None or run is None:
        return False
    return (run[1] - run[0]).total_seconds() < 0.1 * (whole[1] - whole[0]).total_seconds()


def gantt(report: dict[str, Any], zoom: bool = False) -> str:
    """The timeline; ``zoom`` fits it to the run's own times, leaving the window out."""
    bars = _bars(report)
    span = _span(report, bars, windows=not zoom)
    height = TOP + ROW_H * max(1, len(bars)) + BOTTOM
    width = LABEL_W + BAR_W + 20
    svg_id = "timeline-run" if zoom else "timeline"
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" id="{svg_id}" role="img" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif" font-size="12">'
            f"<title>Timeline of run {escape(report['run_id'])}</title>"
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>')
    if span is None:
        return head + f'<text x="10" y="{TOP}">no step has started yet</text></svg>'
    lo, hi = span
    total = (hi - lo).total_seconds()

    def x(moment: datetime) -> float:
        return LABEL_W + BAR_W * (moment - lo).total_seconds() / total

    parts = [head]
    bottom = TOP + ROW_H * len(bars)
    parts += _windows(report, x, lo, hi, bottom)
    parts += _axis(lo, total, x, bottom, _tz(report))
    for i, b in enumerate(bars):
        y = TOP + i * ROW_H
        parts.append(f'<text class="step-label" x="{LABEL_W - 8}" y="{y + 15}" '
                     f'text-anchor="end">{escape(b["key"])}</text>')
        if b["wait_from"] and b["start"]:
            parts.append(_rect(x(b["wait_from"]), x(b["start"]), y + 7, 6, "#ffcc80",
                               f"{b['key']}: waiting"))
        if b["start"]:
            end = b["end"] or hi
            parts.append(_rect(x(b["start"]), x(end), y + 4, 14,
                               COLORS.get(b["state"], "#546e7a"),
                               f"{b['key']}: {b['state']} {b['start'].isoformat()} .. "
                               f"{b['end'].isoformat() if b['end'] else 'unfinished'}",
                               cls="bar"))
        if b["revert"] and b["revert"][0]:
            parts.append(_rect(x(b["revert"][0]), x(b["revert"][1]), y + 4, 14, "#6a1b9a",
                               f"{b['key']}: reverted", cls="revert"))
    ponr = report.get("point_of_no_return")
    if ponr and ts(ponr["at"]):
        px = x(ts(ponr["at"]))  # type: ignore[arg-type]
        parts.append(f'<g id="ponr"><line x1="{px:.1f}" y1="{TOP - 14}" x2="{px:.1f}" '
                     f'y2="{bottom}" stroke="#d50000" stroke-width="2" stroke-dasharray="5,3"/>'
                     f'<text x="{px + (-4 if px > LABEL_W + BAR_W / 2 else 4):.1f}" '
                     f'y="{TOP - 16}" fill="#d50000" text-anchor='
                     f'"{"end" if px > LABEL_W + BAR_W / 2 else "start"}">point of no return'
                     f'</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _rect(x0: float, x1: float, y: float, h: float, fill: str, title: str,
          cls: str = "") -> str:
    w = max(2.0, x1 - x0)  # an instant step is still visible
    klass = f' class="{cls}"' if cls else ""
    return (f'<rect{klass} x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{h}" fill="{fill}">'
            f"<title>{escape(title)}</title></rect>")


def _windows(report: dict[str, Any], x: Callable[[datetime], float], lo: datetime,
             hi: datetime, bottom: float) -> list[str]:
    left, right = LABEL_W, LABEL_W + BAR_W

    def clip(moment: datetime) -> float:  # a window wider than the axis stops at its ends
        return min(right, max(left, x(moment)))

    parts = []
    for w in report["windows"]:
        ws, we = ts(w["start"]), ts(w["end"])
        if not ws or not we or we < lo or ws > hi:
            continue
        reserve = we - timedelta(seconds=w["rollback_reserve"])
        n = w["index"] + 1
        band = (f'<rect x="{clip(ws):.1f}" y="{TOP - 8}" width="{clip(we) - clip(ws):.1f}" '
                f'height="{bottom - TOP + 8}" fill="#e3f2fd"/>')
        if reserve < hi:
            band += (f'<rect x="{clip(reserve):.1f}" y="{TOP - 8}" '
                     f'width="{clip(we) - clip(reserve):.1f}" height="{bottom - TOP + 8}" '
                     f'fill="#bbdefb"><title>rollback reserve</title></rect>')
        for moment, word, anchor, dx in ((ws, "opens", "start", 4), (we, "closes", "end", -4)):
            if lo <= moment <= hi:
                band += (f'<line x1="{x(moment):.1f}" y1="{TOP - 30}" x2="{x(moment):.1f}" '
                         f'y2="{bottom}" stroke="#0d47a1" stroke-width="2"/>'
                         f'<text x="{x(moment) + dx:.1f}" y="{TOP - 30}" fill="#0d47a1" '
                         f'text-anchor="{anchor}">window {n} {word}</text>')
        parts.append(f'<g id="window-{w["index"]}" class="window">{band}</g>')
    return parts


def _axis(lo: datetime, total: float, x: Callable[[datetime], float], bottom: float,
          tz: tzinfo | None) -> list[str]:
    step = next((t for t in TICKS if total / t <= 10), TICKS[-1])
    first = lo.timestamp() // step * step + step
    parts = [(f'<line x1="{LABEL_W}" y1="{bottom}" x2="{LABEL_W + BAR_W}" y2="{bottom}" '
             f'stroke="#424242"/>')]
    t = first
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    while t <= lo.timestamp() + total:
        moment = datetime.fromtimestamp(t, lo.tzinfo).astimezone(tz or lo.tzinfo)
        px = x(moment)
        parts.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" '
                     f'stroke="#424242"/><text x="{px:.1f}" y="{bottom + 16}" '
                     f'text-anchor="middle" fill="#424242">{moment.strftime(fmt)}</text>')
        t += step
    return parts
