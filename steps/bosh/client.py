"""A small client for the ``bosh`` v2 CLI, driven through ``--json``.

Every call runs ``bosh --json --non-interactive ...`` through a runner (``ctx.run`` in
steps, so timeouts, cancellation and the step log apply) with the director and
credentials in the child's environment only (``BOSH_ENVIRONMENT``, ``BOSH_CLIENT``,
``BOSH_CLIENT_SECRET``, ``BOSH_CA_CERT``, ``BOSH_DEPLOYMENT``). Output shapes are those
of bosh-cli's ``ui/json_ui.go`` (``Tables``/``Blocks``/``Lines``); a failed command
raises :class:`BoshError` carrying the task id and the CLI's own error lines verbatim.

Only the stdlib is imported here, so ``steps.bosh.step`` may load it cheaply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from runbook.api import Completed, Secret, StepFailed

TASK_LINE = re.compile(r"^Task (\d+)\b")


class BoshError(StepFailed):
    """A ``bosh`` command failed. ``task_id`` is the director task (if one ran)."""

    def __init__(self, message: str, *, task_id: int | None = None,
                 lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.lines = lines or []


@dataclass(frozen=True)
class Process:
    name: str
    state: str


@dataclass(frozen=True)
class Instance:
    """One row of ``bosh instances -i --ps``; ``state`` is the desired state
    (``started``, ``stopped``, ``detached``); ``process_state`` what the agent reports."""

    group: str
    id: str
    index: str = ""
    az: str = ""
    ips: tuple[str, ...] = ()
    process_state: str = ""
    state: str = ""
    vm_cid: str = ""
    vm_type: str = ""
    disk_cids: tuple[str, ...] = ()
    bootstrap: bool = False
    processes: tuple[Process, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.group}/{self.id}"

    @property
    def running(self) -> bool:
        return self.process_state == "running"

    @property
    def stopped(self) -> bool:
        """Stopped as BOSH means it: desired state stopped or detached, nothing running."""
        return self.state in ("stopped", "detached") and self.process_state != "running"

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "id": self.id, "index": self.index, "az": self.az,
                "ips": list(self.ips), "process_state": self.process_state,
                "state": self.state, "vm_cid": self.vm_cid, "vm_type": self.vm_type,
                "disk_cids": list(self.disk_cids), "bootstrap": self.bootstrap,
                "processes": [{"name": p.name, "state": p.state} for p in self.processes]}


@dataclass(frozen=True)
class Outcome:
    """What a successful command printed."""

    lines: list[str]
    tables: list[dict[str, Any]]
    blocks: list[str]

    @property
    def task_id(self) -> int | None:
        return _task_id(self.lines)


@dataclass(frozen=True)
class BoshSettings:
    """Where the director is and who we are; ``client_secret`` stays a Secret."""

    environment: str
    deployment: str
    client: str = ""
    client_secret: Secret | str | None = None
    ca_cert: str | None = None
    cli: str = "bosh"
    timeout: float | None = None


Runner = Callable[..., Completed]


class Director(Protocol):
    """The operations the BOSH steps need; :class:`BoshCli` is the real one."""

    def deployments(self) -> list[str]: ...
    def manifest(self) -> str | None: ...
    def cloud_config(self) -> str | None: ...
    def update_cloud_config(self, path: str) -> Outcome: ...
    def deploy(self, path: str, *, dry_run: bool = False) -> Outcome: ...
    def delete_deployment(self) -> Outcome: ...
    def instances(self) -> list[Instance]: ...
    def stop(self, selector: str, *, hard: bool = False) -> Outcome: ...
    def start(self, selector: str) -> Outcome: ...
    def set_resurrection(self, enabled: bool) -> Outcome: ...
    def attach_disk(self, instance: str, disk_cid: str,
                    disk_properties: str | None = None) -> Outcome: ...


class BoshCli:
    """Runs the ``bosh`` executable. ``runner`` is ``ctx.run`` (argv, env=, timeout=)."""

    def __init__(self, settings: BoshSettings, runner: Runner) -> None:
        self.settings = settings
        self.runner = runner

    # -- reads ------------------------------------------------------------------------------

    def deployments(self) -> list[str]:
        rows = _rows(self.call(["deployments"], deployment=False), "deployments")
        return [r.get("name", "") for r in rows]

    def manifest(self) -> str | None:
        if self.settings.deployment not in self.deployments():
            return None
        blocks = self.call(["manifest"]).blocks
        return "".join(blocks) if blocks else ""

    def cloud_config(self) -> str | None:
        try:
            blocks = self.call(["cloud-config"], deployment=False).blocks
        except BoshError as exc:
            if any("No cloud config" in line for line in exc.lines):
                return None
            raise
        return "".join(blocks)

    def instances(self) -> list[Instance]:
        return parse_instances(_rows(self.call(["instances", "--ps", "--details"]), "instances"))

    # -- changes ----------------------------------------------------------------------------

    def update_cloud_config(self, path: str) -> Outcome:
        return self.call(["update-cloud-config", path], deployment=False)

    def deploy(self, path: str, *, dry_run: bool = False) -> Outcome:
        return self.call(["deploy", path] + (["--dry-run"] if dry_run else []))

    def delete_deployment(self) -> Outcome:
        return self.call(["delete-deployment"])

    def stop(self, selector: str, *, hard: bool = False) -> Outcome:
        return self.call(["stop", selector, "--hard" if hard else "--soft"])

    def start(self, selector: str) -> Outcome:
        return self.call(["start", selector])

    def set_resurrection(self, enabled: bool) -> Outcome:
        return self.call(["update-resurrection", "on" if enabled else "off"], deployment=False)

    def attach_disk(self, instance: str, disk_cid: str,
                    disk_properties: str | None = None) -> Outcome:
        extra = ["--disk-properties", disk_properties] if disk_properties else []
        return self.call(["attach-disk", instance, disk_cid] + extra)

    # -- plumbing ---------------------------------------------------------------------------

    def env(self, deployment: bool = True) -> dict[str, str]:
        s = self.settings
        env = {"BOSH_ENVIRONMENT": s.environment, "BOSH_CLIENT": s.client,
               "BOSH_NON_INTERACTIVE": "true"}
        if s.client_secret is not None:
            secret = s.client_secret
            env["BOSH_CLIENT_SECRET"] = secret.reveal() if isinstance(secret, Secret) else secret
        if s.ca_cert:
            env["BOSH_CA_CERT"] = s.ca_cert
        if deployment:
            env["BOSH_DEPLOYMENT"] = s.deployment
        return env

    def call(self, args: list[str], *, deployment: bool = True) -> Outcome:
        s = self.settings
        argv = [s.cli, "--json", "--non-interactive"]
        if deployment:
            argv += ["-d", s.deployment]
        argv += args
        shown = " ".join(["bosh"] + argv[3:])  # what an operator would type
        try:
            done = self.runner(argv, env=self.env(deployment), timeout=s.timeout)
        except FileNotFoundError:
            raise BoshError(f"the bosh CLI '{s.cli}' was not found; install bosh-cli v2 "
                            "or set 'cli' (target key bosh.cli) to its path") from None
        except PermissionError:
            raise BoshError(f"the bosh CLI '{s.cli}' is not executable") from None
        try:
            data = json.loads(done.stdout) if done.stdout.strip() else {}
        except ValueError:
            data = {}
        lines = [str(x) for x in (data.get("Lines") or [])]
        outcome = Outcome(lines, list(data.get("Tables") or []),
                          [str(b) for b in (data.get("Blocks") or [])])
        if done.returncode != 0:
            raise _error(shown, done, lines)
        return outcome


def _error(shown: str, done: Completed, lines: list[str]) -> BoshError:
    task = _task_id(lines)
    detail = [ln for ln in lines if _is_error_line(ln)]
    if not detail:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
        detail = tail if not lines else [ln for ln in lines if not ln.startswith("Using ")][-5:]
    where = f" (director task {task})" if task is not None else ""
    message = f"{shown} failed{where}: " + " / ".join(d.strip() for d in detail if d.strip())
    return BoshError(message, task_id=task, lines=lines)


def _is_error_line(line: str) -> bool:
    return ("Error:" in line or "Expected task" in line or "non-successful" in line
            or "doesn't exist" in line or line.startswith("Expected ")
            or "must be in" in line or "Not authorized" in line)


def _task_id(lines: list[str]) -> int | None:
    found = None
    for line in lines:
        m = TASK_LINE.match(line)
        if m:
            found = int(m.group(1))
    return found


def _rows(outcome: Outcome, content: str) -> list[dict[str, str]]:
    for table in outcome.tables:
        if table.get("Content") == content:
            return [dict(r) for r in table.get("Rows") or []]
    return []


def parse_instances(rows: list[dict[str, str]]) -> list[Instance]:
    """Rows of ``bosh instances --ps -i --json`` to Instances. Process rows follow their
    instance row; their ``instance`` cell may be empty, ``~`` or the instance name."""
    out: list[dict[str, Any]] = []
    for row in rows:
        name = row.get("instance", "").strip()
        process = row.get("process", "").strip()
        if process and out and name in ("", "~", out[-1]["name"]):
            out[-1]["processes"].append(Process(process, _cell(row.get("process_state"))))
            continue
        if not name or "/" not in name:
            continue
        group, _, ident = name.partition("/")
        out.append({"name": name, "processes": [], "inst": dict(
            group=group, id=ident, index=row.get("index", ""), az=_cell(row.get("az")),
            ips=tuple(_split(row.get("ips"))), process_state=_cell(row.get("process_state")),
            state=_cell(row.get("state")), vm_cid=_cell(row.get("vm_cid")),
            vm_type=_cell(row.get("vm_type")), disk_cids=tuple(_split(row.get("disk_cids"))),
            bootstrap=row.get("bootstrap") == "true")})
    return [Instance(processes=tuple(o["processes"]), **o["inst"]) for o in out]


def _cell(value: str | None) -> str:
    value = (value or "").strip()
    return "" if value in ("-", "~") else value


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split("\n") if _cell(v)]
