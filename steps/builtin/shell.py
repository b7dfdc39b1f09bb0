"""``shell``: run a command given as an argument list (no shell parsing unless you ask)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Any

from runbook.api import (
    Action,
    Duration,
    Plan,
    Result,
    Secret,
    Step,
    StepContext,
    StepFailed,
    param,
    reveal,
)

OUTPUT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ShellParams:
    command: list[str] = param(doc="argument list; use [sh, -c, '...'] for a shell")
    env: dict[str, str] = param(factory=dict, doc="extra environment (secret references allowed)")
    cwd: str | None = param(None, doc="working directory")
    timeout: Duration | None = param(None, doc="kill the command after this long")
    creates: str | None = param(None, doc="a path the command creates; present = already done")
    verify: list[str] | None = param(None, doc="command that exits 0 when the work is done")
    revert: list[str] | None = param(None, doc="command that undoes the work")
    ok_codes: list[int] = param(factory=lambda: [0], doc="exit codes that mean success")
    read_only: bool = param(False, doc="declare that the command changes nothing")


class Shell(Step[ShellParams]):
    """Run a command; stdout and stderr go to the run's log directory."""

    Params = ShellParams
    outputs = ("returncode", "stdout", "stderr", "log")

    def plan(self, params: ShellParams, facts: dict[str, Any] | None) -> Plan:
        if params.creates and facts and facts.get("creates_exists"):
            return Plan.unchanged(f"{params.creates} already exists")
        line = f"run {_show(params.command)}"
        if params.cwd:
            line += f" in {params.cwd}"
        if params.read_only:
            return Plan.of(Action.read(line))
        return Plan.of(Action.unknown(line) if not params.creates else Action.change(line))

    def observe(self, ctx: StepContext, params: ShellParams) -> dict[str, Any]:
        if params.creates:
            return {"creates_exists": os.path.exists(params.creates)}
        return {}

    def apply(self, ctx: StepContext, params: ShellParams, plan: Plan) -> Result:
        if plan.empty:
            return Result(outputs={"returncode": 0, "stdout": "", "stderr": "", "log": ""},
                          changed=False)
        env = {k: str(reveal(v)) for k, v in params.env.items()}
        done = ctx.run([str(reveal(a)) for a in params.command], env=env, cwd=params.cwd,
                       timeout=params.timeout)
        log = str(ctx.log_dir / f"{ctx.safe_step_id}.log")
        if done.returncode not in params.ok_codes:
            tail = ctx.redact(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
            raise StepFailed(f"{_show(params.command)} exited {done.returncode}"
                             + (f": {tail}" if tail else "") + f" (log: {log})")
        return Result(outputs={"returncode": done.returncode,
                               "stdout": ctx.redact(done.stdout[-OUTPUT_LIMIT:]),
                               "stderr": ctx.redact(done.stderr[-OUTPUT_LIMIT:]), "log": log},
                      changed=not params.read_only)

    def verify(self, ctx: StepContext, params: ShellParams, result: Result | None) -> bool | None:
        if params.verify:
            done = ctx.run([str(reveal(a)) for a in params.verify], cwd=params.cwd,
                           timeout=params.timeout)
            return done.returncode == 0
        if params.creates:
            return os.path.exists(params.creates)
        return None

    def revert(self, ctx: StepContext, params: ShellParams, record: dict[str, Any]) -> None:
        if not params.revert:
            return
        done = ctx.run([str(reveal(a)) for a in params.revert], cwd=params.cwd,
                       timeout=params.timeout)
        if done.returncode != 0:
            raise StepFailed(f"revert command {_show(params.revert)} exited {done.returncode}")

    def can_revert(self, params: ShellParams) -> bool:
        return params.revert is not None

    def revert_plan(self, params: ShellParams, record: dict[str, Any]) -> Plan:
        if not params.revert:
            return Plan.unchanged("no revert command given")
        return Plan.of(Action.change(f"run {_show(params.revert)}"))


def _show(argv: list[Any]) -> str:
    return shlex.join(["***" if isinstance(a, Secret) else str(a) for a in argv])


