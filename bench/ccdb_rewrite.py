"""ccdb.rewrite_hosts throughput against its cost floor, the key derivation.

    python bench/ccdb_rewrite.py [--rows 100000] [--naive-rows 2000]

Starts a real PostgreSQL, fills ``service_keys`` with N rows encrypted the way Cloud
Controller does (once with 16-character salts: PBKDF2-HMAC-SHA256, 2,048 iterations;
once with 8-character salts: EVP_BytesToKey, MD5, 2,048 rounds), then measures:

* the floor: key derivations per second on one core and on every core;
* ``apply`` of the step (one derivation per row for decrypt and encrypt, a process
  per core, batched COPY + UPDATE writes);
* a naive one-off script on the first ``--naive-rows`` rows of a copy: one row at a
  time, a derivation for decrypt and another for encrypt, an UPDATE and commit per row.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from runbook.lab.ccdb_seed import SeedKeys, seed
from runbook.lab.servers import Postgres
from runbook.testing import make_context, make_params
from steps.ccdb import crypto
from steps.ccdb.hostmap import HostMap
from steps.ccdb.step import RewriteHosts

KEY = "bench-key-0"
HOSTS = {"10.0.0.5": "10.1.0.5", "db.old.example": "db.new.example"}


def _derive_many(args: tuple[int, int, bool]) -> int:
    start, count, legacy = args
    for i in range(start, start + count):
        crypto.derive(KEY, f"{i:08x}" if legacy else f"{i:016x}", 2048)
    return count


def floor(legacy: bool, processes: int, seconds: float = 3.0) -> float:
    """Derivations per second with ``processes`` processes."""
    chunk = 40 if legacy else 100
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_derive_many, [(0, 5, legacy)] * processes)  # warm up the workers
        done, start, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            jobs = [(start + k * chunk, chunk, legacy) for k in range(processes * 2)]
            done += sum(pool.map(_derive_many, jobs))
            start += chunk * processes * 2
        return done / (time.perf_counter() - t0)


def naive(dsn: str, limit: int) -> float:
    """Rows per second of a row-by-row script (decrypt, rewrite, encrypt, UPDATE, commit)."""
    import psycopg

    hosts = HostMap(HOSTS)
    with psycopg.connect(dsn) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM service_keys ORDER BY id LIMIT %s",
                                          (limit,)).fetchall()]
        conn.commit()
        t0 = time.perf_counter()
        for row_id in ids:
            value, salt, iterations = conn.execute(
                "SELECT credentials, salt, encryption_iterations FROM service_keys WHERE id = %s",
                (row_id,)).fetchone()  # type: ignore[misc]
            plain = crypto.decrypt(value, KEY, salt, iterations)
            new = crypto.encrypt(hosts.rewrite(plain)[0], KEY, salt, iterations)
            conn.execute("UPDATE service_keys SET credentials = %s WHERE id = %s", (new, row_id))
            conn.commit()
        return len(ids) / (time.perf_counter() - t0)


def run_step(dsn: str, workdir: Path) -> tuple[float, float, int]:
    """(observe seconds, apply seconds, values changed) of the real step."""
    env = {"DSN": dsn, "KEY": KEY}
    targets = {"bench": {"ccdb": {"dsn": "${env:DSN}", "db_encryption_key": "${env:KEY}"}}}
    ctx = make_context(workdir, targets=targets, environ=env)
    params = make_params(RewriteHosts, {"target": "bench", "hosts": HOSTS, "batch_size": 2000})
    step = RewriteHosts()
    t0 = time.perf_counter()
    plan = step.plan(params, step.observe(ctx, params))
    t1 = time.perf_counter()
    result = step.apply(ctx, params, plan)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, int(result.outputs["changed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=2_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cores = len(os.sched_getaffinity(0))
    lines = []
    with Postgres() as pg:
        for legacy in (False, True):
            kind = "legacy MD5" if legacy else "PBKDF2 2048"
            one, all_cores = floor(legacy, 1), floor(legacy, cores)
            dsn = pg.create_database("bench_legacy" if legacy else "bench_pbkdf2")
            twin = pg.create_database("naive_legacy" if legacy else "naive_pbkdf2")
            t0 = time.perf_counter()
            keys = SeedKeys(db_encryption_key=KEY)
            common: dict[str, Any] = {"era": "current", "hosts": ["10.0.0.5", "db.old.example"],
                                      "keys": keys, "kdf": "legacy" if legacy else "pbkdf2",
                                      "tables": ["service_keys"]}
            seed(dsn, apps=args.rows, workers=cores, **common)
            seed(twin, apps=args.naive_rows, **common)
            seeded = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as tmp:
                observe_s, apply_s, changed = run_step(dsn, Path(tmp))
            base = naive(twin, args.naive_rows)
            rate = changed / apply_s
            lines.append((kind, changed, one, all_cores, changed / observe_s, rate,
                          100 * rate / all_cores, base, rate / base, seeded))
    print(f"\nccdb.rewrite_hosts, {cores} cores, rows={args.rows}, naive on {args.naive_rows} rows\n")
    header = ("rows", "values", "floor/s 1 core", f"floor/s {cores} cores", "plan scan rows/s",
              "apply rows/s", "% of floor", "naive rows/s", "apply/naive", "seed s")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for kind, changed, one, allc, scan, rate, pct, base, speed, seeded in lines:
        print(f"| {kind} | {changed} | {one:,.0f} | {allc:,.0f} | {scan:,.0f} | {rate:,.0f} | "
              f"{pct:.0f}% | {base:,.0f} | {speed:.1f}x | {seeded:.0f} |")


if __name__ == "__main__":
    main()
