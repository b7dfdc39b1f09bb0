"""Capture 100,000 distinct routes from a real nats-server, then compare two captures.

    python bench/routes_capture.py [ROUTES]

A publisher in a separate process (as a route-emitter would be) sends one
``router.register`` per route, first as fast as it can, then paced at 50,000 messages/s;
this process runs the same capture code as ``routes.snapshot``. Each run shows whether
every route arrived and how fast the capture consumed them. Finally the two captures (all
addresses differ between them) are written as snapshots and compared with the
``routes.compare`` step in this same process; the peak resident memory covers it all.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from runbook.lab.routes_fake import make_registrations, publish_burst
from runbook.lab.servers import Nats
from runbook.testing import make_context, make_params
from steps.routes import nats_client
from steps.routes.model import write_snapshot
from steps.routes.step import CompareRoutes


class TimedRecorder(nats_client.EventLog):
    """The capture's event log, noting when the first and the last message arrived."""

    first_at = 0.0
    last_at = 0.0

    def register(self, data: bytes) -> None:
        super().register(data)
        now = time.perf_counter()
        if not TimedRecorder.first_at:
            TimedRecorder.first_at = now
        TimedRecorder.last_at = now


def publisher(url: str, routes: int, rate: float | None, network: str) -> None:
    payloads = [r.payload() for r in make_registrations(routes, endpoints_per_route=1,
                                                        network=network)]
    took = publish_burst(url, payloads, rate=rate)
    print(json.dumps({"seconds": took}))


def capture_run(url: str, routes: int, rate: float | None, network: str) -> dict[str, Any]:
    TimedRecorder.first_at = TimedRecorder.last_at = 0.0
    expected = routes / rate if rate else routes / 100_000
    settings = nats_client.NatsSettings([url])
    result: dict[str, Any] = {}

    def listen() -> None:
        result["capture"] = nats_client.NatsRouteSource(settings).capture(
            duration=2.0 + expected * 3 + 5.0, default_interval=20, greet=False,
            greet_wait=0, cancelled=threading.Event())

    worker = threading.Thread(target=listen)
    worker.start()
    time.sleep(1.5)  # connected and subscribed long before this
    argv = [sys.executable, __file__, "--publish", url, str(routes), str(rate or 0), network]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    worker.join()
    capture = result["capture"]
    published_in = json.loads(out.stdout)["seconds"]
    consumed_in = TimedRecorder.last_at - TimedRecorder.first_at
    return {"rate": f"{rate:,.0f}/s" if rate else "max", "sent": routes,
            "send_rate": routes / published_in, "received": capture.registers,
            "routes": len(capture.table), "dropped": capture.dropped,
            "consume_rate": capture.registers / consumed_in if consumed_in else 0.0,
            "table": capture.table}


def main() -> None:
    if sys.argv[1:2] == ["--publish"]:
        url, routes, rate, network = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), \
            sys.argv[5]
        publisher(url, routes, rate or None, network)
        return
    routes = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    nats_client.EventLog = TimedRecorder  # type: ignore[misc]
    with Nats() as server:
        runs = [capture_run(server.url, routes, None, "10.0"),
                capture_run(server.url, routes, 50_000, "10.1")]
    print(f"NATS capture, {routes:,} distinct routes, one router.register each")
    print(f"{'publisher':>10} {'sent msg/s':>11} {'received':>9} {'routes':>8} "
          f"{'dropped':>8} {'consumed msg/s':>15}")
    for r in runs:
        print(f"{r['rate']:>10} {r['send_rate']:11,.0f} {r['received']:9,} {r['routes']:8,} "
              f"{r['dropped']:8,} {r['consume_rate']:15,.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        write_snapshot(base / "old.json.gz", runs[0].pop("table"), {})
        write_snapshot(base / "new.json.gz", runs[1].pop("table"), {})
        ctx = make_context(base / "run", step_id="compare")
        params = make_params(CompareRoutes, {"old": str(base / "old.json.gz"),
                                             "new": str(base / "new.json.gz")})
        started, cpu = time.perf_counter(), time.process_time()
        try:
            summary = CompareRoutes().apply(ctx, params, CompareRoutes().plan(params, None)
                                            ).outputs["summary"]
        except Exception as exc:  # noqa: BLE001 - a failed comparison is a result here
            summary = f"FAILED: {exc}"
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"compare of the two captures: {wall:.3f} s wall, {cpu:.3f} s CPU: {summary}")
    print(f"peak resident memory (two captures + compare): {peak:.0f} MB; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
