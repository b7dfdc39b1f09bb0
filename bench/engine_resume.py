"""Resume, memory and validate costs, measured through the CLI as an operator runs it.

    python bench/engine_resume.py [--steps 1000]

- a run of N no-op shell-free steps (``wait 0s``) that stops at a final approval;
  the peak resident memory of that run process;
- the wall time of ``runbook resume`` that finishes it (interpreter start included);
- the wall time of ``runbook validate`` on the reference runbook.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(cwd: Path, *args: str) -> tuple[int, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runbook.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True)
    return done.returncode, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp())
    lines = ["runbook: resume-bench", "max_parallel: 4", "steps:"]
    for i in range(args.steps):
        lines += [f"  - id: s{i}", "    uses: wait", "    with: {duration: 0s}"]
    lines += ["  - id: gate", "    uses: approve",
              f"    needs: [{', '.join(f's{i}' for i in range(args.steps))}]",
              "    with: {prompt: \"done?\"}"]
    (d / "big.yml").write_text("\n".join(lines) + "\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code, run_s = cli(d, "run", "big.yml", "--run-id", "big")
    rss_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert code == 3, f"expected the run to stop at the approval, got exit {code}"
    cli(d, "approve", "big", "gate", "--by", "bench")
    code, resume_s = cli(d, "resume", "big")
    assert code == 0, f"resume failed with exit {code}"
    validate = [cli(ROOT, "validate", "runbooks/cf-vcloud-to-openstack.yml")[1]
                for _ in range(5)]
    print(f"{args.steps}-step run through the CLI: {run_s:.2f} s, peak RSS {rss_mb:.0f} MB")
    print(f"resume of that run (all {args.steps} steps done, one approval left): "
          f"{resume_s:.2f} s wall, interpreter start included")
    print(f"validate runbooks/cf-vcloud-to-openstack.yml: median {statistics.median(validate):.2f}"
          f" s of 5 (min {min(validate):.2f} s)")
    print(f"cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()
