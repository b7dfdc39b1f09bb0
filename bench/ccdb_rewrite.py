"""ccdb.rewrite_hosts throughput against its cost floor, the key derivation.

    python bench/ccdb_rewrite.py [--rows 100000] [--naive-rows 2000]

Starts a real PostgreSQL, fills ``service_keys`` with N rows encrypted the way Cloud
Controller does (once with 16-character salts: PBKDF2-HMAC-SHA256, 2,048 iterations;
once with 8-character salts: EVP_BytesToKey, MD5, 2,048 rounds), then measures:

* two floors, each in key derivations per CPU-second on one core times the cores,
  measured before and after the step: row at a time (``hashlib``/OpenSSL PBKDF2,
  CPython's MD5: the floor the issue describes), and batched through ``derive_many``
  (the compiled multi-buffer kernel when it is built; the same as row at a time when not);
* the measured floor: batched derivations per wall-clock second with one process per
  core running at once (includes whatever else the machine is doing);
* how much of the CPU the step spends in derivation (load-independent efficiency);
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
import resource
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
BATCH = 1024  # salts per derive_many call in the batched floor (the step's batches: 2,000)


def _salts(legacy: bool, start: int, count: int) -> list[str]:
    return [f"{i:08x}" if legacy else f"{i:016x}" for i in range(start, start + count)]


def _derive(legacy: bool, batched: bool, start: int) -> int:
    """Derive a few keys the way the step does (batched) or one call per row; returns how
    many were derived."""
    if batched:
        return len(crypto.derive_many(KEY, _salts(legacy, start, BATCH), 2048))
    for salt in _salts(legacy, start, 16):
        crypto.derive(KEY, salt, 2048)
    return 16


def floor(legacy: bool, batched: bool, cpu_seconds: float = 2.0) -> float:
    """Key derivations per CPU-second on one core (CPU time, so other load on the machine
    does not lower it; the multi-core floor is this times the core count)."""
    done, t0 = 0, time.process_time()
    while time.process_time() - t0 < cpu_seconds:
        done += _derive(legacy, batched, done)
    return done / (time.process_time() - t0)


def _derive_for(args: tuple[bool, bool, float]) -> int:
    legacy, batched, seconds = args
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        done += _derive(legacy, batched, done)
    return done


def parallel_floor(legacy: bool, batched: bool, processes: int, seconds: float = 2.0) -> float:
    """Derivations per wall-clock second with one process per core, all at once (what
    the machine gives right now, other load included)."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_derive_for, [(legacy, batched, 0.1)] * processes)  # start-up is not the floor
        t0 = time.perf_counter()
        done = sum(pool.map(_derive_for, [(legacy, batched, seconds)] * processes))
        return done / (time.perf_counter() - t0)


def cpu_now() -> float:
    """CPU seconds of this process and of its finished children (the worker pools)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def naive(dsn: str, limit: int) -> tuple[float, float]:
    """Rows per second and CPU seconds per row of a row-by-row script (decrypt, rewrite,
    encrypt, UPDATE, commit)."""
    import psycopg

    hosts = HostMap(HOSTS)
    with psycopg.connect(dsn) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM service_keys ORDER BY id LIMIT %s",
                                          (limit,)).fetchall()]
        conn.commit()
        t0, c0 = time.perf_counter(), cpu_now()
        for row_id in ids:
            value, salt, iterations = conn.execute(
                "SELECT credentials, salt, encryption_iterations FROM service_keys WHERE id = %s",
                (row_id,)).fetchone()  # type: ignore[misc]
            plain = crypto.decrypt(value, KEY, salt, iterations)
            new = crypto.encrypt(hosts.rewrite(plain)[0], KEY, salt, iterations)
            conn.execute("UPDATE service_keys SET credentials = %s WHERE id = %s", (new, row_id))
            conn.commit()
        return len(ids) / (time.perf_counter() - t0), (cpu_now() - c0) / len(ids)


def run_step(dsn: str, workdir: Path) -> tuple[float, float, float, int]:
    """(observe seconds, apply seconds, apply CPU seconds, values changed) of the step."""
    env = {"DSN": dsn, "KEY": KEY}
    targets = {"bench": {"ccdb": {"dsn": "${env:DSN}", "db_encryption_key": "${env:KEY}"}}}
    ctx = make_context(workdir, targets=targets, environ=env)
    params = make_params(RewriteHosts, {"target": "bench", "hosts": HOSTS, "batch_size": 2000})
    step = RewriteHosts()
    t0 = time.perf_counter()
    plan = step.plan(params, step.observe(ctx, params))
    t1, c1 = time.perf_counter(), cpu_now()
    result = step.apply(ctx, params, plan)
    t2, c2 = time.perf_counter(), cpu_now()
    return t1 - t0, t2 - t1, c2 - c1, int(result.outputs["changed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=2_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cores = len(os.sched_getaffinity(0))
    lines = []
    load = os.getloadavg()[0]
    with Postgres() as pg:
        for legacy in (False, True):
            kind = "legacy MD5" if legacy else "PBKDF2 2048"
            dsn = pg.create_database("bench_legacy" if legacy else "bench_pbkdf2")
            twin = pg.create_database("naive_legacy" if legacy else "naive_pbkdf2")
            t0 = time.perf_counter()
            common: dict[str, Any] = {"era": "current", "hosts": ["10.0.0.5", "db.old.example"],
                                      "keys": SeedKeys(db_encryption_key=KEY),
                                      "kdf": "legacy" if legacy else "pbkdf2",
                                      "tables": ["service_keys"]}
            seed(dsn, apps=args.rows, workers=cores, **common)
            seed(twin, apps=args.naive_rows, **common)
            seeded = time.perf_counter() - t0
            batched = crypto.compiled()
            one = floor(legacy, batched=False)
            fast = floor(legacy, batched=True) if batched else one
            both = parallel_floor(legacy, batched, cores)
            with tempfile.TemporaryDirectory() as tmp:
                observe_s, apply_s, apply_cpu, changed = run_step(dsn, Path(tmp))
            # before and after, against drifting load
            one = (one + floor(legacy, batched=False)) / 2
            fast = (fast + floor(legacy, batched=True)) / 2 if batched else one
            both = (both + parallel_floor(legacy, batched, cores)) / 2
            base_rate, base_cpu = naive(twin, args.naive_rows)
            rate = changed / apply_s
            lines.append([kind, f"{changed}",
                          f"{one * cores:,.0f}", f"{100 * rate / (one * cores):.0f}%",
                          f"{fast * cores:,.0f}", f"{100 * rate / (fast * cores):.0f}%",
                          f"{both:,.0f}", f"{100 * rate / both:.0f}%",
                          f"{changed / observe_s:,.0f}", f"{rate:,.0f}",
                          f"{100 * (changed / fast) / apply_cpu:.0f}%",
                          f"{base_rate:,.0f}", f"{100 * (1 / one) / base_cpu:.0f}%",
                          f"{rate / base_rate:.1f}x", f"{seeded:.0f}"])
    print(f"\nccdb.rewrite_hosts: {args.rows} rows per KDF, {cores} cores, naive script on "
          f"{args.naive_rows} rows; load average {load:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end\n")
    header = ["KDF", "values",
              f"row-at-a-time floor ({cores} cores)", "apply % of it",
              f"batched floor ({cores} cores)", "apply % of it",
              f"measured {cores}-process batched floor/s", "apply % of it",
              "plan scan rows/s", "apply rows/s", "apply CPU in derivation",
              "naive rows/s", "naive CPU in derivation", "apply/naive", "seed s"]
    print(f"key derivation in the step: {crypto.accelerator()}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for line in lines:
        print("| " + " | ".join(line) + " |")

if __name__ == "__main__":
    main()
