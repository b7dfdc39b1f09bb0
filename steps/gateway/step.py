"""``gateway.switch``: send the gateway's traffic to the new routers (seeds/000: "Adjust
the old gateway to point to the new environment"), with nginx, HAProxy or an OpenStack
LBaaS pool as the gateway. Revert puts the previous routers back.

Only the standard library and ``runbook.api`` are imported here; the backends (Jinja2,
openstacksdk) are loaded when a step actually runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from runbook.api import (
    Action,
    Duration,
    Plan,
    Result,
    Step,
    StepContext,
    StepFailed,
    TargetRef,
    param,
)

Backend = Literal["nginx", "haproxy", "openstack"]
_SETTINGS = ("config", "upstream_file", "upstream_name", "prefix", "binary", "master_socket",
             "pid_file", "reload_command", "pool", "cloud")


@dataclass(frozen=True)
class SwitchGatewayParams:
    routers: list[str] = param(doc="new router addresses, host:port")
    target: TargetRef | None = param(None, doc="profile whose 'gateway' entry describes "
                                     "the gateway (and 'openstack.cloud' for LBaaS)")
    backend: Backend | None = param(None, doc="nginx, haproxy or openstack "
                                    "(default: the target's gateway.kind)")
    config: str | None = param(None, doc="main nginx.conf / haproxy.cfg")
    upstream_file: str | None = param(None, doc="the file holding the upstream/backend")
    upstream_name: str | None = param(None, doc="upstream/backend name (default cf_routers)")
    prefix: str | None = param(None, doc="nginx -p prefix")
    binary: str | None = param(None, doc="nginx or haproxy executable")
    master_socket: str | None = param(None, doc="HAProxy master CLI socket, for reload")
    pid_file: str | None = param(None, doc="HAProxy master pid file, for reload (SIGUSR2)")
    reload_command: list[str] | None = param(None, doc="command that reloads the gateway")
    template: str | None = param(None, doc="Jinja2 template of the upstream section")
    server_options: str = param("", doc="appended to every server line, e.g. 'check'")
    pool: str | None = param(None, doc="LBaaS pool name or id")
    cloud: str | None = param(None, doc="clouds.yaml cloud of the LBaaS pool")
    protocol_port: int = param(80, doc="router port when an address has none (LBaaS)")
    member_weight: int = param(1, doc="weight of new LBaaS members")
    probe_url: str | None = param(None, doc="URL through the gateway (default gateway.url)")
    probe_contains: str | None = param(None, doc="text (body or header) marking the new "
                                       "routers' answers")
    probe_host: str | None = param(None, doc="Host header for the probes")
    probe_count: int = param(5, doc="good answers in a row that prove the switch")
    probe_timeout: Duration = param(Duration(30), doc="how long the new routers may take "
                                    "to receive the traffic")
    insecure: bool = param(False, doc="skip TLS verification of probes")


class SwitchGateway(Step[SwitchGatewayParams]):
    """Point the gateway at ``routers``.

    Reads the target key ``gateway`` (``kind``, ``config``, ``upstream_file``,
    ``upstream_name``, ``prefix``, ``binary``, ``master_socket``, ``pid_file``,
    ``reload_command``, ``url``, ``pool``, ``cloud``) and, for LBaaS, ``openstack.cloud``;
    parameters override them. nginx/HAProxy: the upstream section is rendered, checked
    with ``nginx -t`` / ``haproxy -c`` before it replaces the live file atomically, and
    the gateway reloads gracefully. LBaaS: new members are added before old ones are
    removed, so the pool is never empty.
    """

    Params = SwitchGatewayParams
    idempotent = True
    outputs = ("backend", "routers", "previous_routers", "probes")

    # -- facts and plan -------------------------------------------------------------------

    def observe(self, ctx: StepContext, params: SwitchGatewayParams) -> dict[str, Any]:
        settings = self._settings(ctx, params)
        if settings["kind"] == "openstack":
            pool = self._pool(settings)
            return {"settings": settings,
                    "members": [m.to_dict() for m in pool.members()]}
        from steps.gateway import config

        gw = self._file_gateway(settings)
        return {"settings": settings, "current": config.read(gw.upstream_file),
                "desired": self._render(params, settings)}

    def plan(self, params: SwitchGatewayParams, facts: dict[str, Any] | None) -> Plan:
        if facts is None:
            # Offline: the target's settings and the live file are not known yet.
            how = {"openstack": "make them the LBaaS pool's members (added before old ones "
                                "are removed)",
                   None: "check, install and reload the gateway's upstream section"}.get(
                       params.backend, f"check, install and reload the {params.backend} "
                                       "upstream section")
            return Plan.of(Action.unknown(f"point the gateway at {', '.join(params.routers)}: "
                                          f"{how}"))
        settings = facts["settings"]
        probe = self._probe_line(params, settings)
        if settings["kind"] == "openstack":
            add, remove = _member_changes(facts["members"], self._wanted(params))
            if not add and not remove:
                return Plan.unchanged(f"pool {settings['pool']} already holds exactly "
                                      f"{', '.join(params.routers)}")
            actions = [Action.change(f"add {a}:{p} to LBaaS pool {settings['pool']}")
                       for a, p in add]
            actions += [Action.change(f"remove {m['address']}:{m['protocol_port']} from "
                                      f"LBaaS pool {settings['pool']}") for m in remove]
            return Plan.of(*actions, *probe)
        if facts["current"] == facts["desired"]:
            return Plan.unchanged(f"{settings['upstream_file']} already points at "
                                  f"{', '.join(params.routers)}")
        from_ = _routers_in(settings["kind"], facts["current"]) or ["nothing"]
        kind = settings["kind"]
        check = "nginx -t" if kind == "nginx" else "haproxy -c"
        return Plan.of(
            Action.read(f"check the new {settings['upstream_name']} section with {check}"),
            Action.change(f"replace {settings['upstream_file']}: {settings['upstream_name']} "
                          f"-> {', '.join(params.routers)} (was {', '.join(from_)})"),
            Action.change(f"reload {kind} gracefully"), *probe)

    # -- apply / verify / revert ----------------------------------------------------------

    def apply(self, ctx: StepContext, params: SwitchGatewayParams, plan: Plan) -> Result:
        settings = self._settings(ctx, params)
        if plan.empty:
            return Result(outputs={"backend": settings["kind"], "routers": params.routers,
                                   "previous_routers": params.routers, "probes": 0},
                          record={"kind": settings["kind"], "noop": True}, changed=False)
        if settings["kind"] == "openstack":
            from steps.gateway.pool_switch import switch_members

            record = switch_members(ctx, self._pool(settings), self._wanted(params),
                                    params.member_weight)
            previous = [f"{m['address']}:{m['protocol_port']}" for m in record["before"]]
        else:
            record, previous = self._switch_file(ctx, params, settings)
        probes = self._await_landing(ctx, params, settings, record)
        return Result(outputs={"backend": settings["kind"], "routers": params.routers,
                               "previous_routers": previous, "probes": probes},
                      record=record)

    def verify(self, ctx: StepContext, params: SwitchGatewayParams,
               result: Result | None) -> bool | None:
        settings = self._settings(ctx, params)
        if settings["kind"] == "openstack":
            members = [m.to_dict() for m in self._pool(settings).members()]
            add, remove = _member_changes(members, self._wanted(params))
            in_place = not add and not remove
        else:
            from steps.gateway import config

            current = config.read(str(settings["upstream_file"]))
            in_place = current == self._render(params, settings)
        if not in_place:
            return False
        probe = self._probe(params, settings)
        if probe is None:
            return True
        from steps.gateway.probe import wait_until_landing

        deadline = ctx.clock.monotonic() + 5.0
        _, problem = wait_until_landing(probe, needed=params.probe_count, deadline=deadline,
                                        now=ctx.clock.monotonic, pause=ctx.sleep)
        return problem is None

    def revert(self, ctx: StepContext, params: SwitchGatewayParams,
               record: dict[str, Any]) -> None:
        if record.get("noop") or not record:
            return
        settings = self._settings(ctx, params)
        if record["kind"] == "openstack":
            from steps.gateway.pool_switch import restore_members

            restore_members(self._pool(settings), record)
            return
        from steps.gateway import config

        gw = self._file_gateway(settings)
        current = config.read(gw.upstream_file)
        if config.sha256(current) == record["previous_sha"]:
            return  # already back (a repeated revert)
        if config.sha256(current) != record["installed_sha"]:
            raise StepFailed(f"{gw.upstream_file} changed after the switch, so it is not "
                             "overwritten; compare it with the copy in the run's artifacts "
                             "and restore the old routers by hand")
        if record["previous"] is None:
            raise StepFailed(f"{gw.upstream_file} did not exist before the switch; remove "
                             "it and its include by hand if the gateway must go back")
        runner = self._runner(ctx)
        candidate = config.write_candidate(gw, record["previous"])
        try:
            config.validate(runner, gw, candidate)
        except StepFailed:
            candidate.unlink(missing_ok=True)
            raise
        config.install(gw, candidate)
        config.reload(runner, gw)

    def revert_plan(self, params: SwitchGatewayParams, record: dict[str, Any]) -> Plan:
        if record.get("noop") or not record:
            return Plan.unchanged("the switch changed nothing")
        if record["kind"] == "openstack":
            return Plan.of(*(Action.change(f"add back {m['address']}:{m['protocol_port']}")
                             for m in record["removed"]),
                           *(Action.change(f"remove {m['address']}:{m['protocol_port']}")
                             for m in record["created"]))
        was = _routers_in(record["kind"], record["previous"]) or ["nothing"]
        return Plan.of(Action.change(f"restore {record['file']} (routers {', '.join(was)}) "
                                     f"and reload {record['kind']}"))

    def can_revert(self, params: SwitchGatewayParams) -> bool:
        return True

    # -- helpers --------------------------------------------------------------------------

    def _switch_file(self, ctx: StepContext, params: SwitchGatewayParams,
                     settings: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        from steps.gateway import config

        gw = self._file_gateway(settings)
        runner = self._runner(ctx)
        previous = config.read(gw.upstream_file)
        desired = self._render(params, settings)
        candidate = config.write_candidate(gw, desired)
        try:
            config.validate(runner, gw, candidate)
        except StepFailed:
            candidate.unlink(missing_ok=True)
            raise
        if previous is not None:
            (ctx.artifact_dir / f"{ctx.safe_step_id}.previous-upstream").write_text(previous)
        record = {"kind": gw.kind, "file": gw.upstream_file, "previous": previous,
                  "previous_sha": config.sha256(previous),
                  "installed_sha": config.sha256(desired)}
        # Durable before the swap: a crash right after it can still be reverted.
        ctx.checkpoint(record)
        config.install(gw, candidate)
        try:
            config.reload(runner, gw)
        except StepFailed as exc:
            raise StepFailed(str(exc), record=record) from None
        return record, _routers_in(gw.kind, previous)

    def _await_landing(self, ctx: StepContext, params: SwitchGatewayParams,
                       settings: dict[str, Any], record: dict[str, Any]) -> int:
        probe = self._probe(params, settings)
        if probe is None:
            return 0
        from steps.gateway.probe import wait_until_landing

        deadline = ctx.clock.monotonic() + float(params.probe_timeout)
        attempts, problem = wait_until_landing(probe, needed=params.probe_count,
                                               deadline=deadline, now=ctx.clock.monotonic,
                                               pause=ctx.sleep)
        if problem is not None:
            raise StepFailed(f"after the switch, probes of {probe.url} did not land on the new "
                             f"routers within {params.probe_timeout:.0f}s ({problem}); roll "
                             "back to restore the old routers", record=record)
        return attempts

    def _settings(self, ctx: StepContext, params: SwitchGatewayParams) -> dict[str, Any]:
        base: dict[str, Any] = {}
        if params.target is not None:
            profile = ctx.target(params.target)
            base = {k: v for k, v in dict(profile.get("gateway") or {}).items()}
            cloud = (profile.get("openstack") or {}).get("cloud")
            if cloud is not None:
                base.setdefault("cloud", cloud)
        for key in _SETTINGS:
            value = getattr(params, key)
            if value is not None:
                base[key] = value
        kind = params.backend or base.get("kind")
        if kind not in ("nginx", "haproxy", "openstack"):
            raise StepFailed("say which gateway this is: backend nginx, haproxy or openstack "
                             "(or kind: in the target's gateway entry)")
        base["kind"] = kind
        base.setdefault("upstream_name", "cf_routers")
        base.setdefault("binary", kind)
        if params.probe_url is not None:
            base["url"] = params.probe_url
        needed = ("pool", "cloud") if kind == "openstack" else ("config", "upstream_file")
        missing = [k for k in needed if not base.get(k)]
        if missing:
            raise StepFailed(f"the {kind} gateway needs {' and '.join(missing)} (as "
                             "parameters or in the target's gateway entry)")
        # Only plain strings go into facts and records: no Secret objects, no credentials.
        return {k: (list(map(str, v)) if isinstance(v, list) else str(v))
                for k, v in base.items()}

    def _file_gateway(self, settings: dict[str, Any]) -> Any:
        from steps.gateway.config import FileGateway

        reload_command = settings.get("reload_command")
        return FileGateway(kind=settings["kind"], config=settings["config"],
                           upstream_file=settings["upstream_file"], binary=settings["binary"],
                           prefix=settings.get("prefix"),
                           master_socket=settings.get("master_socket"),
                           pid_file=settings.get("pid_file"),
                           reload_command=tuple(reload_command) if reload_command else None)

    def _render(self, params: SwitchGatewayParams, settings: dict[str, Any]) -> str:
        from steps.gateway import config

        if params.template is not None:
            try:
                template = Path(params.template).read_text()
            except OSError as exc:
                raise StepFailed(f"template {params.template} cannot be read "
                                 f"({exc.strerror})") from None
        else:
            template = config.default_template(settings["kind"])
        return config.render(template, kind=settings["kind"],
                             upstream_name=settings["upstream_name"],
                             routers=list(params.routers), server_options=params.server_options)

    def _pool(self, settings: dict[str, Any]) -> Any:
        from steps.gateway.lbaas import OctaviaPool

        return OctaviaPool(settings["cloud"], settings["pool"])

    def _wanted(self, params: SwitchGatewayParams) -> list[tuple[str, int]]:
        wanted = []
        for router in params.routers:
            host, sep, port = router.rpartition(":")
            if sep and port.isdigit():
                wanted.append((host.strip("[]"), int(port)))
            else:
                wanted.append((router, params.protocol_port))
        return wanted

    def _probe(self, params: SwitchGatewayParams, settings: dict[str, Any]) -> Any:
        url = settings.get("url")
        if not url:
            return None
        from steps.gateway.probe import Probe

        return Probe(url=url, contains=params.probe_contains, host=params.probe_host,
                     insecure=params.insecure)

    def _probe_line(self, params: SwitchGatewayParams,
                    settings: dict[str, Any]) -> list[Action]:
        url = settings.get("url")
        if not url:
            return []
        what = f" containing {params.probe_contains!r}" if params.probe_contains else ""
        return [Action.read(f"probe {url} until {params.probe_count} answers in a row{what}")]

    def _runner(self, ctx: StepContext) -> Any:
        return lambda argv: ctx.run(argv, timeout=60)


def _member_changes(members: list[dict[str, Any]], wanted: list[tuple[str, int]]) -> tuple[
        list[tuple[str, int]], list[dict[str, Any]]]:
    """(address, port) pairs to add, and members to remove, to get exactly ``wanted``."""
    have = {(m["address"], int(m["protocol_port"])) for m in members}
    add = [w for w in dict.fromkeys(wanted) if w not in have]
    remove = [m for m in members if (m["address"], int(m["protocol_port"])) not in set(wanted)]
    return add, remove


def _routers_in(kind: str, text: str | None) -> list[str]:
    """The router addresses a rendered section points at (for plans and outputs)."""
    if not text:
        return []
    pattern = r"^\s*server\s+([^\s;]+)" if kind == "nginx" else r"^\s*server\s+\S+\s+([^\s#]+)"
    return re.findall(pattern, text, re.MULTILINE)
