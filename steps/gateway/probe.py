"""HTTP probes through the gateway: do requests land on the routers we expect?"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    url: str
    contains: str | None = None  # text in the body or a header that marks the new routers
    host: str | None = None  # Host header, for a gateway reached by address
    insecure: bool = False
    timeout: float = 5.0


def probe_once(probe: Probe) -> str | None:
    """None when the answer is good, else a short description of what was wrong."""
    headers = {"Host": probe.host} if probe.host else {}
    request = urllib.request.Request(probe.url, headers=headers)
    context = ssl._create_unverified_context() if probe.insecure else None
    try:
        with urllib.request.urlopen(request, timeout=probe.timeout, context=context) as resp:
            status = resp.status
            body = resp.read(1 << 16).decode("utf-8", "replace")
            header_text = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"unreachable ({getattr(exc, 'reason', exc)})"
    if status >= 400:
        return f"status {status}"
    if probe.contains is not None and probe.contains not in body \
            and probe.contains not in header_text:
        return f"answer does not contain {probe.contains!r}"
    return None


def wait_until_landing(probe: Probe, *, needed: int, deadline: float,
                       now: Callable[[], float], pause: Callable[[float], None]) -> tuple[
                           int, str | None]:
    """Probe until ``needed`` answers in a row are good or the deadline passes.

    Returns (attempts, last problem or None). A reload is graceful, so for a moment old
    workers may still answer from the old routers; only a run of good answers counts.
    """
    attempts, streak, problem = 0, 0, None
    while True:
        attempts += 1
        problem = probe_once(probe)
        streak = 0 if problem else streak + 1
        if streak >= needed:
            return attempts, None
        if now() >= deadline:
            return attempts, problem or "not enough good answers in a row"
        pause(0.1 if problem else 0.02)
