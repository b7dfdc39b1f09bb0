"""Durations as operators write them: ``30s``, ``10m``, ``2h``, ``1h30m``, ``1d``, or seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


class Duration(float):
    """Seconds, parsed from a human duration. A float so arithmetic stays plain."""

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


def parse_duration(value: object) -> Duration:
    """Parse a duration or raise ValueError with a sentence fit for an operator."""
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like '30s', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"must not be negative, got {value!r}")
        return Duration(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a duration like '30s', got {value!r}")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"must be a duration like '30s', '10m' or '1h30m', got {value!r}")
    return Duration(total)


def format_duration(seconds: float) -> str:
    """Short human form: 0.4s, 12s, 4m05s, 1h02m."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"
