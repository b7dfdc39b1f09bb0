"""Maintenance windows: parsing and pure arithmetic (``now`` is always passed in)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runbook.duration import parse_duration
from runbook.model import Window

_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2}):?(\d{2})?$")


def parse_timezone(name: str) -> tzinfo:
    if name in ("UTC", "Z", "utc"):
        return UTC
    match = _OFFSET.match(name.strip())
    if match:
        sign = -1 if match.group(1) == "-" else 1
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
        return timezone(sign * delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}; use an IANA name like 'Europe/Berlin' "
                         "or an offset like '+01:00'") from None


def parse_instant(value: Any, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"must be a date and time like '2026-11-28T22:00:00+01:00', "
                             f"got {value!r}") from None
    else:
        raise ValueError(f"must be a date and time like '2026-11-28T22:00:00+01:00', got {value!r}")
    if moment.tzinfo is None:
        # a wall-clock time in the window's timezone; fold=0 picks the first of a repeated hour
        moment = moment.replace(tzinfo=tz)
    return moment


def parse_window(spec: dict[str, Any], index: int) -> Window:
    """Build a Window from its mapping; raises ValueError naming the bad key."""
    tz_name = str(spec.get("timezone", "UTC"))
    try:
        tz = parse_timezone(tz_name)
    except ValueError as exc:
        raise KeyedError("timezone", str(exc)) from None
    if "start" not in spec:
        raise KeyedError("", "a window needs 'start'")
    try:
        start = parse_instant(spec["start"], tz)
    except ValueError as exc:
        raise KeyedError("start", str(exc)) from None
    if ("duration" in spec) == ("end" in spec):
        raise KeyedError("", "a window needs exactly one of 'duration' or 'end'")
    if "duration" in spec:
        try:
            # elapsed time: a window across a DST change still lasts what it says
            end = (start.astimezone(UTC)
                   + timedelta(seconds=parse_duration(spec["duration"]))).astimezone(start.tzinfo)
        except ValueError as exc:
            raise KeyedError("duration", str(exc)) from None
    else:
        try:
            end = parse_instant(spec["end"], tz)
        except ValueError as exc:
            raise KeyedError("end", str(exc)) from None
    if end <= start:
        raise KeyedError("end" if "end" in spec else "duration", "the window ends before it starts")
    try:
        reserve = parse_duration(spec.get("rollback_reserve", 0))
    except ValueError as exc:
        raise KeyedError("rollback_reserve", str(exc)) from None
    if reserve >= (end - start).total_seconds():
        raise KeyedError("rollback_reserve", "the rollback reserve is as long as the window")
    return Window(start=start, end=end, rollback_reserve=float(reserve), timezone=tz_name,
                  continue_in_next=bool(spec.get("continue_in_next", False)), index=index)


class KeyedError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def current_window(windows: tuple[Window, ...], now: datetime) -> Window | None:
    for w in windows:
        if w.contains(now):
            return w
    return None


def next_window(windows: tuple[Window, ...], now: datetime) -> Window | None:
    upcoming = [w for w in windows if w.start > now]
    return min(upcoming, key=lambda w: w.start) if upcoming else None


def seconds_left(window: Window, now: datetime) -> float:
    return (window.end - now).total_seconds()
