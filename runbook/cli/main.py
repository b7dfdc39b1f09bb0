"""``runbook``: the command line. The only place where errors are turned into text.

Exit codes: 0 done, 1 a step failed (after any rollback), 2 invalid input (nothing was
executed), 3 stopped by the window, a go/no-go or a pending approval (resumable).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runbook.errors import InputError, RevertFailed, RunbookError, Stopped, StoreError

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STOPPED = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runbook", description="Declarative runbooks for moving "
                                "a Cloud Foundry foundation between clouds.")
    p.add_argument("--state", default=os.environ.get("RUNBOOK_STATE"),
                   help="state store: a SQLite path (default .runbook/state.db) or "
                        "postgresql://... URL")
    p.add_argument("--debug", action="store_true", help="print tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check runbooks; every problem as FILE:LINE:COL")
    v.add_argument("files", nargs="+")

    pl = sub.add_parser("plan", help="dry-run: what each step would do; no side effects")
    pl.add_argument("file")
    pl.add_argument("--targets", help="YAML file replacing the runbook's targets")
    pl.add_argument("--format", choices=["text", "json"], default="text")
    pl.add_argument("--observe", action="store_true",
                    help="read facts from the targets (read-only; needs the secrets) so the "
                         "plan shows what would really change")

    for name, helptext in (("run", "execute a runbook, checkpointed"),
                           ("rehearse", "execute against a rehearsal target (the lab by "
                                        "default) and record timings")):
        r = sub.add_parser(name, help=helptext)
        r.add_argument("file")
        r.add_argument("--run-id")
        r.add_argument("--targets", help="YAML file replacing the runbook's targets")
        r.add_argument("--force", metavar="REASON", help="proceed past a failed go/no-go")
        r.add_argument("--wait", action="store_true",
                       help="wait for the window to open instead of exiting 3")

    rs = sub.add_parser("resume", help="continue a stopped or crashed run")
    rs.add_argument("run_id")
    rs.add_argument("--rerun-interrupted", action="store_true")
    rs.add_argument("--skip-interrupted", action="store_true")
    rs.add_argument("--accept-changes", action="store_true")
    rs.add_argument("--force", metavar="REASON")
    rs.add_argument("--wait", action="store_true")

    rb = sub.add_parser("rollback", help="undo what a run did, newest first")
    rb.add_argument("run_id")
    rb.add_argument("--to", metavar="STEP", help="undo only what ran after STEP")
    rb.add_argument("--through-point-of-no-return", action="store_true",
                    help="also undo the point of no return and what ran before it")

    st = sub.add_parser("status", help="state of a run (the newest when no id is given)")
    st.add_argument("run_id", nargs="?")
    st.add_argument("--json", action="store_true")

    ap = sub.add_parser("approve", help="answer an approve step")
    ap.add_argument("run_id")
    ap.add_argument("step")
    ap.add_argument("--by", default=None, help="who approves (default: your user name)")

    rp = sub.add_parser("report", help="timing report of a run")
    rp.add_argument("run_id")
    rp.add_argument("--format", choices=["text", "markdown", "json", "html"], default="text")
    rp.add_argument("--compare", nargs="+", metavar="RUN_ID", default=[])
    rp.add_argument("--output", "-o", help="write to this file")

    sub.add_parser("history", help="every run with outcome, duration and downtime")

    ul = sub.add_parser("unlock", help="break a stale lock (see 'runbook status')")
    ul.add_argument("name")

    sc = sub.add_parser("steps", help="the step catalogue: types and their parameters")
    sc.add_argument("--markdown", action="store_true", help="as Markdown tables")

    mf = sub.add_parser("manifest", help="BOSH manifests for the target IaaS")
    mf_sub = mf.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")
    mr = mf_sub.add_parser("render", help="render manifests/ for one IaaS")
    mr.add_argument("--iaas", required=True, choices=["vcloud", "openstack", "aws", "cloudstack"])
    mr.add_argument("--vars", required=True, metavar="FILE", help="variables YAML file")
    mr.add_argument("--output", "-o", required=True, metavar="FILE",
                    help="manifest path; the cloud config is written beside it")
    mr.add_argument("--templates", help="template directory (default: manifests/)")

    from runbook.cli.lab import add_parser as add_lab_parser

    add_lab_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from runbook.cli import commands

    try:
        return int(getattr(commands, "cmd_" + args.command.replace("-", "_"))(args))
    except InputError as exc:
        _err(str(exc))
        return EXIT_INPUT
    except StoreError as exc:
        _err(str(exc))
        return EXIT_INPUT
    except Stopped as exc:
        _err(f"stopped: {exc}")
        return EXIT_STOPPED
    except RevertFailed as exc:
        _err(str(exc))
        return EXIT_FAILED
    except RunbookError as exc:
        _err(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_STOPPED
    except Exception:
        path = Path(".runbook") / "debug.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(traceback.format_exc())
        if args.debug:
            traceback.print_exc()
        _err(f"internal error: {sys.exc_info()[1]!r}; the traceback is in {path} "
             "(please report it)")
        return EXIT_FAILED


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def install_interrupt(engine: Any) -> None:
    """First Ctrl-C: start no new step, let running ones finish; second: cancel them."""
    def handler(signum: int, frame: Any) -> None:
        engine.stop_requests += 1
        if engine.stop_requests == 1:
            _err("stopping: no new steps will start; running steps finish "
                 "(press Ctrl-C again to cancel them)")
        else:
            _err("cancelling running steps")
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    raise SystemExit(main())


