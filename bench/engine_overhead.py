"""Engine overhead per step, side by side with ansible-core, TaskFlow and bare SQLite.

    python bench/engine_overhead.py [--steps 1000] [--shell 100] [--ansible 20]

Prints one table. Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.api import Action, Plan, Result, Step, StepContext
from runbook.clock import RealClock
from runbook.engine.runner import Engine, Options
from runbook.loader.validate import parse_runbook
from runbook.registry import Registry
from runbook.step import NoParams
from runbook.store.base import open_store


class Noop(Step[NoParams]):
    """Does nothing: what is left is the engine's own cost."""

    def plan(self, params: NoParams, facts: dict[str, Any] | None) -> Plan:
        return Plan.of(Action.read("nothing"))

    def apply(self, ctx: StepContext, params: NoParams, plan: Plan) -> Result:
        return Result(changed=False)


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def sqlite_commit(n: int = 2000) -> float:
    """Seconds per durable commit of one small row (WAL, synchronous=FULL)."""
    d = tempfile.mkdtemp()
    conn = sqlite3.connect(os.path.join(d, "c.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (str(i % 50), "x" * 200))
        conn.execute("COMMIT")
    took = (time.perf_counter() - start) / n
    conn.close()
    shutil.rmtree(d)
    return took


def runbook_steps(n: int, uses: str, with_: str = "{}", chain: bool = False) -> float:
    """Seconds per step for a runbook of ``n`` steps, durable SQLite checkpoints."""
    lines = ["runbook: bench\nmax_parallel: 1\nsteps:"]
    for i in range(n):
        needs = f"\n    needs: [s{i - 1}]" if chain and i else ""
        lines.append(f"  - id: s{i}\n    uses: {uses}\n    with: {with_}{needs}")
    reg = Registry()
    reg.register("bench.noop", Noop)
    runbook = parse_runbook("\n".join(lines) + "\n", "bench.yml", registry=reg)
    d = Path(tempfile.mkdtemp())
    store = open_store(str(d / "state.db"))
    engine = Engine(store, runbook, run_root=d / "runs", clock=RealClock(), registry=reg)
    engine.start(Options())
    start = time.perf_counter()
    state = engine.execute()
    took = time.perf_counter() - start
    assert state == "succeeded", state
    store.close()
    shutil.rmtree(d)
    return took / n


def ansible(n: int, task: str) -> float | None:
    """Seconds per task of an ansible-playbook run on localhost (startup subtracted)."""
    binary = shutil.which("ansible-playbook") or str(Path(sys.executable).parent /
                                                     "ansible-playbook")
    if not os.path.exists(binary):
        return None
    d = Path(tempfile.mkdtemp())

    def play(count: int) -> float:
        tasks = "".join(f"    - {task}\n" for _ in range(count)) or "    - meta: noop\n"
        (d / "p.yml").write_text("- hosts: localhost\n  connection: local\n  gather_facts: false"
                                 f"\n  tasks:\n{tasks}")
        env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOWS="1",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        start = time.perf_counter()
        subprocess.run([binary, str(d / "p.yml")], env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    empty = min(play(0) for _ in range(2))
    full = min(play(n) for _ in range(2))
    shutil.rmtree(d)
    return (full - empty) / n


def taskflow(n: int, persist: bool) -> float | None:
    try:
        from taskflow import engines, task
        from taskflow.patterns import linear_flow
        from taskflow.persistence import backends, models
    except ImportError:
        return None

    class Nop(task.Task):  # type: ignore[misc]
        def execute(self) -> None:
            return None

    flow = linear_flow.Flow("bench")
    for i in range(n):
        flow.add(Nop(name=f"t{i}"))
    d = Path(tempfile.mkdtemp())
    kwargs: dict[str, Any] = {}
    if persist:
        backend = backends.fetch({"connection": f"sqlite:///{d}/tf.db"})
        conn = backend.get_connection()
        conn.upgrade()
        book = models.LogBook("bench")
        detail = models.FlowDetail("bench", uuid=f"flow-{time.time_ns()}")
        book.add(detail)
        conn.save_logbook(book)
        kwargs = {"backend": backend, "book": book, "flow_detail": detail}
    engine = engines.load(flow, **kwargs)
    start = time.perf_counter()
    engine.run()
    took = (time.perf_counter() - start) / n
    shutil.rmtree(d)
    return took


@dataclass
class Row:
    what: str
    seconds: float | None
    note: str = ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--shell", type=int, default=100)
    ap.add_argument("--ansible", type=int, default=20)
    args = ap.parse_args()

    commit = median_of(3, sqlite_commit)
    noop = median_of(3, lambda: runbook_steps(args.steps, "bench.noop"))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shell = median_of(3, lambda: runbook_steps(args.shell, "shell", "{command: [/bin/true]}"))
    rows = [
        Row("SQLite WAL+FULL commit (floor)", commit),
        Row(f"paas-runbook no-op step ({args.steps} steps)", noop,
            f"{noop / (2 * commit):.2f}x the floor of its 2 checkpoints"),
        Row(f"paas-runbook shell /bin/true ({args.shell} steps)", shell),
        # TaskFlow's cost per task grows with the size of the flow: show both sizes
        Row("TaskFlow no-op task, in memory (100)", taskflow(100, False)),
        Row(f"TaskFlow no-op task, in memory ({args.steps})", taskflow(args.steps, False)),
        Row("TaskFlow no-op task, SQLite persistence (100)", taskflow(100, True)),
        Row(f"TaskFlow no-op task, SQLite persistence ({args.steps})",
            taskflow(args.steps, True)),
        Row(f"ansible-core debug task ({args.ansible})",
            ansible(args.ansible, "debug: {msg: hi}")),
        Row(f"ansible-core command /bin/true ({args.ansible})",
            ansible(args.ansible, "command: /bin/true")),
    ]
    ans_cmd = rows[-1].seconds
    if ans_cmd:
        rows[2].note = f"{ans_cmd / shell:.0f}x cheaper than ansible's command task"
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; peak RSS after the no-op runs {rss_mb:.0f} MB")
    print(f"{'what':<58} {'per step':>12}  note")
    for r in rows:
        value = f"{r.seconds * 1000:.3f} ms" if r.seconds is not None else "n/a"
        print(f"{r.what:<58} {value:>12}  {r.note}")


if __name__ == "__main__":
    main()
