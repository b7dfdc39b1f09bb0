"""Compare two 100,000-route snapshots: load both, diff, write the diff (the whole step).

    python bench/routes_compare.py [ROUTES]

The new table has every address changed, 1% of routes missing, 1% thinned from two
endpoints to one and 0.5% extra routes, so every branch of the comparison runs.
Prints the best and median of five runs per phase (the step itself in a fresh process,
so its peak resident memory is its own).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbook.testing import make_context, make_params
from steps.routes.compare import AddressMap, compare_tables
from steps.routes.model import Endpoint, Table, read_rows, rows_from_table, write_snapshot
from steps.routes.step import CompareRoutes


def tables(routes: int) -> tuple[Table, Table]:
    old: Table = {}
    new: Table = {}
    for i in range(routes):
        uri = f"app-{i}.apps.example.com" + ("/api" if i % 10 == 0 else "")
        app = f"{i:08x}-0000-4000-8000-000000000000"
        old[uri] = {f"10.0.{i % 250}.{j + 1}:{61000 + i % 4000}":
                    Endpoint(f"10.0.{i % 250}.{j + 1}:{61000 + i % 4000}", app, False,
                             f"inst-{i}-{j}", "", f"z{j + 1}", "http1") for j in range(2)}
        if i % 100 == 0:
            continue  # missing
        keep = 1 if i % 100 == 1 else 2  # thinned
        new[uri] = {f"10.1.{i % 250}.{j + 1}:{62000 + i % 4000}":
                    Endpoint(f"10.1.{i % 250}.{j + 1}:{62000 + i % 4000}", app, False,
                             f"inst-{i}-{j}", "", f"z{j + 1}", "http1") for j in range(keep)}
    for i in range(routes // 200):
        new[f"extra-{i}.apps.example.com"] = {"10.1.9.9:1": Endpoint("10.1.9.9:1", f"x{i}")}
    return old, new


def timed(fn: Callable[[], Any], runs: int = 5) -> tuple[float, float, float]:
    """Best and median wall-clock seconds, and the best CPU seconds of this process (the
    machine is shared: CPU time shows the cost when other processes steal the cores)."""
    walls, cpus = [], []
    for _ in range(runs):
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return min(walls), statistics.median(walls), min(cpus)


def step_only(old: str, new: str, routes: int) -> None:
    """In a fresh process: the routes.compare step alone, five times; JSON on stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(tmp), step_id="compare")
        params = make_params(CompareRoutes, {"old": old, "new": new, "max_missing": routes,
                                             "max_missing_endpoints_ratio": 1.0})
        step = CompareRoutes()
        plan = step.plan(params, None)
        outputs: dict[str, Any] = {}
        best, median, cpu = timed(lambda: outputs.update(step.apply(ctx, params, plan).outputs))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"timing": [best, median, cpu], "peak_mb": peak,
                      "summary": outputs["summary"]}))


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        step_only(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    routes = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    old, new = tables(routes)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        write_snapshot(base / "old.json.gz", old, {})
        write_snapshot(base / "new.json.gz", new, {})
        size = (base / "old.json.gz").stat().st_size
        argv = [sys.executable, __file__, "--step", str(base / "old.json.gz"),
                str(base / "new.json.gz"), str(routes)]
        alone = json.loads(subprocess.run(argv, capture_output=True, text=True,
                                          check=True).stdout)
        old_rows, new_rows = rows_from_table(old), rows_from_table(new)
        amap = AddressMap({"10.0.0.0/16": "10.1.0.0/16"})
        rows = [
            ("routes.compare step (read 2, diff, write)", tuple(alone["timing"])),
            ("write one snapshot", timed(lambda: write_snapshot(base / "w.json.gz", old, {}))),
            ("read one snapshot (rows)", timed(lambda: read_rows(base / "old.json.gz"))),
            ("compare (in memory)", timed(lambda: compare_tables(old_rows, new_rows))),
            ("compare with an address map (in memory)",
             timed(lambda: compare_tables(old_rows, new_rows, address_map=amap))),
        ]
    print(f"routes.compare, {routes:,} routes per table ({size / 1e6:.1f} MB snapshot, "
          f"two endpoints per route)")
    print(f"{'phase':44} {'best s':>8} {'median s':>9} {'best CPU s':>11}")
    for name, (best, median, cpu) in rows:
        print(f"{name:44} {best:8.3f} {median:9.3f} {cpu:11.3f}")
    print(f"diff: {alone['summary']}")
    print(f"peak resident memory of the step alone (fresh process): {alone['peak_mb']:.0f} MB; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
