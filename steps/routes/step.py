"""``routes.snapshot`` and ``routes.compare``: prove the new stack serves every route the
old one did, before anyone switches the gateway.

Only the standard library and :mod:`runbook.api` are imported here; the clients (and
nats-py) are imported when a step runs, so ``runbook validate`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from runbook.api import (
    Action,
    Duration,
    Plan,
    Result,
    Secret,
    Step,
    StepContext,
    StepFailed,
    TargetRef,
    param,
    reveal_text,
)


def _secs(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def _shown(value: Any) -> str:
    return str(value)  # a Secret prints as ***


# --- routes.snapshot ---------------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotRoutesParams:
    target: TargetRef | None = param(None, doc="profile whose 'routers' and/or 'nats' are read")
    source: Literal["auto", "routers", "nats", "both"] = param(
        "auto", doc="what to read; auto: every source the target or parameters define")
    routers: list[str] | None = param(None, doc="gorouter base URLs (override routers.urls)")
    router_user: str | None = param(None, doc="router status user (override routers.user)")
    router_password: Secret | None = param(None, doc="router status password reference")
    nats_servers: list[str] | None = param(None, doc="NATS URLs (override nats.servers)")
    nats_user: str | None = param(None, doc="NATS user (override nats.user)")
    nats_password: Secret | None = param(None, doc="NATS password reference")
    nats_token: Secret | None = param(None, doc="NATS token reference")
    duration: Duration | None = param(None, doc="how long to listen to NATS; default: two "
                                                "registration intervals")
    interval: Duration = param(Duration(20), doc="registration interval assumed when no "
                                                 "router answers router.greet")
    greet: bool = param(True, doc="ask the routers (router.greet) for their interval first")
    greet_wait: Duration = param(Duration(1), doc="how long to collect router.greet answers")
    timeout: Duration = param(Duration(10), doc="connect/read timeout per server")
    min_routes: int = param(1, doc="fail when fewer routes than this were captured")
    name: str | None = param(None, doc="artifact file name (default routes-<step id>.json.gz)")


@dataclass(frozen=True)
class _Sources:
    routers: list[Any]
    router_user: Any
    router_password: Any
    nats: list[Any]
    nats_user: Any
    nats_password: Any
    nats_token: Any


def _listed(value: Any) -> list[Any]:
    """A profile may name one server as a string or several as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, (str, Secret)) else list(value)


def _resolve(ctx: StepContext, p: SnapshotRoutesParams) -> _Sources:
    profile = ctx.target(p.target) if p.target is not None else {}
    routers_cfg = profile.get("routers") or {}
    nats_cfg = profile.get("nats") or {}
    if not isinstance(routers_cfg, dict) or not isinstance(nats_cfg, dict):
        raise StepFailed(f"target '{p.target}': 'routers' and 'nats' must be mappings")
    routers = _listed(p.routers if p.routers is not None else routers_cfg.get("urls"))
    nats = _listed(p.nats_servers if p.nats_servers is not None else nats_cfg.get("servers"))
    if p.source in ("routers", "nats"):
        routers, nats = (routers, []) if p.source == "routers" else ([], nats)
    where = f"target '{p.target}'" if p.target is not None else "the step parameters"
    if p.source in ("routers", "both") and not routers:
        raise StepFailed(f"{where} names no router: set routers.urls in the target or the "
                         "'routers' parameter")
    if p.source in ("nats", "both") and not nats:
        raise StepFailed(f"{where} names no NATS server: set nats.servers in the target or "
                         "the 'nats_servers' parameter")
    if not routers and not nats:
        raise StepFailed(f"{where} defines neither routers nor nats: nothing to read the "
                         "routing table from")
    for url in routers + nats:
        if "@" in _shown(url):
            raise StepFailed("server URLs must not carry credentials; give them as user and "
                             "password (or token) references instead")

    def pick(explicit: Any, key: str, cfg: dict[str, Any]) -> Any:
        return explicit if explicit is not None else cfg.get(key)

    return _Sources(routers, pick(p.router_user, "user", routers_cfg),
                    pick(p.router_password, "password", routers_cfg), nats,
                    pick(p.nats_user, "user", nats_cfg),
                    pick(p.nats_password, "password", nats_cfg),
                    pick(p.nats_token, "token", nats_cfg))


class SnapshotRoutes(Step[SnapshotRoutesParams]):
    """Store the gorouter routing table as a versioned, gzip-compressed artifact.

    Reads from the target profile: ``routers: {urls, user, password}`` (each router's
    ``/routes``, basic auth; every gorouter era's format) and ``nats: {servers, user,
    password | token}`` (``router.register`` / ``router.unregister`` for two registration
    intervals). ``source: auto`` reads every source defined (the explicit parameters
    override the profile's values); with both, the tables are merged and the same address
    on the same route is one endpoint. Read-only: the only thing written is the artifact in
    the run directory. Outputs: ``path``, ``sha256``, ``routes``, ``endpoints``, ``apps``,
    ``format_version``, ``sources`` (per source: kind, url, routes, endpoints) and ``nats``
    (registers, unregisters, rejected, dropped, routers_answered, interval_seconds,
    listened_seconds).
    """

    Params = SnapshotRoutesParams
    idempotent = True
    outputs = ("path", "sha256", "routes", "endpoints", "apps", "format_version", "sources",
               "nats")

    def observe(self, ctx: StepContext, params: SnapshotRoutesParams) -> dict[str, Any]:
        s = _resolve(ctx, params)
        return {"routers": [_shown(u) for u in s.routers],
                "router_user": None if s.router_user is None else _shown(s.router_user),
                "nats": [_shown(u) for u in s.nats],
                "nats_auth": ("token" if s.nats_token is not None else
                              f"user {_shown(s.nats_user)}" if s.nats_user is not None else
                              "no authentication")}

    def plan(self, params: SnapshotRoutesParams, facts: dict[str, Any] | None) -> Plan:
        if params.duration is not None:
            how_long = _secs(params.duration)
        elif params.greet:
            how_long = (f"two registration intervals (asked by router.greet; "
                        f"{_secs(2 * params.interval)} if no router answers)")
        else:
            how_long = f"{_secs(2 * params.interval)} (two registration intervals)"
        save = Action.read("write the compressed snapshot to the run's artifacts")
        if facts is None:  # offline: the target's servers are not looked at
            where = f"target '{params.target}'" if params.target else "the given servers"
            routers = "GET /routes from its routers"
            nats = f"listen to router.register/unregister on its NATS for {how_long}"
            what = {"routers": routers, "nats": nats, "both": f"{routers} and {nats}",
                    "auto": f"{routers} and/or {nats} (whichever it defines)"}[params.source]
            return Plan.of(Action.read(f"read the routing table of {where}: {what}"), save)
        actions = []
        if facts["routers"]:
            who = f" as {facts['router_user']}" if facts["router_user"] else ""
            actions.append(Action.read(f"GET /routes from {len(facts['routers'])} router(s) "
                                       f"{', '.join(facts['routers'])}{who}"))
        if facts["nats"]:
            actions.append(Action.read(
                f"listen to router.register/unregister on NATS {', '.join(facts['nats'])} "
                f"({facts['nats_auth']}) for {how_long}"))
        return Plan.of(*actions, save)

    def estimate(self, params: SnapshotRoutesParams) -> float | None:
        return float(params.duration if params.duration is not None else 2 * params.interval)

    def apply(self, ctx: StepContext, params: SnapshotRoutesParams, plan: Plan) -> Result:
        from steps.routes.model import Table, count_endpoints, merge_into, write_snapshot

        s = _resolve(ctx, params)
        table: Table = {}
        sources: list[dict[str, Any]] = []
        for url, part in self._read_routers(s, params):
            merge_into(table, part)
            sources.append({"kind": "router", "url": url, "routes": len(part),
                            "endpoints": count_endpoints(part)})
        nats_out: dict[str, Any] = {}
        if s.nats:
            capture = self._capture_nats(ctx, s, params)
            ctx.check_cancelled()
            merge_into(table, capture.table)
            sources.append({"kind": "nats", "url": ", ".join(_shown(u) for u in s.nats),
                            "routes": len(capture.table),
                            "endpoints": count_endpoints(capture.table)})
            nats_out = {"registers": capture.registers, "unregisters": capture.unregisters,
                        "rejected": capture.rejected, "dropped": capture.dropped,
                        "routers_answered": len(capture.routers),
                        "interval_seconds": capture.interval,
                        "listened_seconds": round(capture.listened, 3)}
            if capture.dropped:
                ctx.log.warning("NATS dropped %d messages because the capture fell behind; "
                                "re-registrations usually cover them", capture.dropped)
        if len(table) < params.min_routes:
            raise StepFailed(f"captured {len(table)} routes, fewer than min_routes "
                             f"{params.min_routes}; check that the sources belong to a running "
                             "foundation (nothing was saved)")
        path = ctx.artifact_dir / (params.name or f"routes-{ctx.safe_step_id}.json.gz")
        apps = len({e.app for eps in table.values() for e in eps.values() if e.app})
        meta = {"captured_at": ctx.clock.now().isoformat(), "sources": sources}
        digest = write_snapshot(path, table, meta)
        from steps.routes.model import VERSION

        outputs = {"path": str(path), "sha256": digest, "routes": len(table),
                   "endpoints": count_endpoints(table), "apps": apps,
                   "format_version": VERSION, "sources": sources, "nats": nats_out}
        return Result(outputs=outputs, record={"path": str(path), "sha256": digest},
                      changed=False)

    def _read_routers(self, s: _Sources, params: SnapshotRoutesParams
                      ) -> list[tuple[str, Any]]:
        from steps.routes.router_client import HttpRouterClient, RouterUnavailable

        if not s.routers:
            return []
        client = HttpRouterClient(reveal_text(s.router_user), reveal_text(s.router_password),
                                  float(params.timeout))
        parts = []
        for url in s.routers:
            try:
                parts.append((_shown(url), client.fetch(reveal_text(url) or "")))
            except RouterUnavailable as exc:
                raise StepFailed(f"{exc} (nothing was saved)") from None
        return parts

    def _capture_nats(self, ctx: StepContext, s: _Sources, params: SnapshotRoutesParams) -> Any:
        from steps.routes.nats_client import NatsRouteSource, NatsSettings, NatsUnavailable

        settings = NatsSettings([reveal_text(u) or "" for u in s.nats], reveal_text(s.nats_user),
                                reveal_text(s.nats_password), reveal_text(s.nats_token),
                                float(params.timeout))
        try:
            return NatsRouteSource(settings).capture(
                duration=params.duration, default_interval=float(params.interval),
                greet=params.greet, greet_wait=float(params.greet_wait),
                cancelled=ctx.cancelled)
        except NatsUnavailable as exc:
            raise StepFailed(f"{exc} (nothing was saved)") from None

    def verify(self, ctx: StepContext, params: SnapshotRoutesParams,
               result: Result | None) -> bool | None:
        if result is None:
            return None  # re-taking a snapshot is harmless: let the engine run it again
        from steps.routes.model import file_digest

        path = Path(result.record["path"])
        return path.is_file() and file_digest(path) == result.record["sha256"]

    def revert_plan(self, params: SnapshotRoutesParams, record: dict[str, Any]) -> Plan:
        return Plan.unchanged("read-only: nothing to undo")


# --- routes.compare ----------------------------------------------------------------------

@dataclass(frozen=True)
class CompareRoutesParams:
    old: str = param(doc="path of the old snapshot, e.g. {{ steps['snap-old'].outputs.path }}")
    new: str = param(doc="path of the new snapshot")
    old_sha256: str | None = param(None, doc="refuse the old snapshot unless it has this digest")
    new_sha256: str | None = param(None, doc="refuse the new snapshot unless it has this digest")
    address_map: dict[str, str] = param(factory=dict, doc="old -> new address: 'ip:port', "
                                                          "'ip' or CIDR blocks of equal size")
    domain_map: dict[str, str] = param(factory=dict, doc="old -> new domain of route hosts")
    ignore: list[str] = param(factory=list, doc="glob patterns of routes left out, e.g. "
                                                "'*.apps.internal'")
    max_missing: int = param(0, doc="routes the new table may lack")
    max_missing_endpoints_ratio: float = param(0.0, doc="share of old endpoints the new "
                                                        "table may lack (0.05 = 5%)")
    max_extra: int | None = param(None, doc="routes only the new table may have (no limit)")
    name: str | None = param(None, doc="diff artifact name (default routes-diff-<id>.json.gz)")


class CompareRoutes(Step[CompareRoutesParams]):
    """Compare two ``routes.snapshot`` artifacts by route and app; fail beyond tolerances.

    Reads no target. Routes are matched by URI and route service URL, endpoints by app
    guid (or expected address through ``address_map``), never by raw address. The
    summary goes to the outputs, the full diff to a compressed artifact.
    """

    Params = CompareRoutesParams
    idempotent = True
    outputs = ("summary", "passed", "routes_old", "routes_new", "missing", "extra", "fewer",
               "missing_endpoints", "missing_endpoints_ratio", "endpoints_old",
               "endpoints_new", "ignored", "missing_sample", "diff_path", "diff_sha256")

    def observe(self, ctx: StepContext, params: CompareRoutesParams) -> dict[str, Any]:
        return {"old_exists": Path(params.old).is_file(), "new_exists": Path(params.new).is_file()}

    def plan(self, params: CompareRoutesParams, facts: dict[str, Any] | None) -> Plan:
        limits = (f"at most {params.max_missing} missing routes and "
                  f"{params.max_missing_endpoints_ratio:.2%} missing endpoints")
        if params.max_extra is not None:
            limits += f", {params.max_extra} extra routes"
        extras = []
        if params.address_map:
            extras.append(f"{len(params.address_map)} address mapping(s)")
        if params.domain_map:
            extras.append(f"{len(params.domain_map)} domain mapping(s)")
        if params.ignore:
            extras.append(f"ignoring {', '.join(params.ignore)}")
        note = f" ({'; '.join(extras)})" if extras else ""
        actions = [Action.read(f"read snapshots {params.old} (old) and {params.new} (new)"),
                   Action.read(f"compare by route and app{note}; fail beyond {limits}"),
                   Action.read("write the full diff to the run's artifacts")]
        absent = [p for p, k in ((params.old, "old_exists"), (params.new, "new_exists"))
                  if facts is not None and not facts.get(k, True)]
        reason = f"not there yet: {', '.join(absent)}" if absent else ""
        return Plan.of(*actions, reason=reason)

    def apply(self, ctx: StepContext, params: CompareRoutesParams, plan: Plan) -> Result:
        import gzip
        import hashlib
        import json
        import os

        from steps.routes.compare import AddressMap, Tolerances, compare_tables
        from steps.routes.model import SnapshotError, read_rows

        if not 0.0 <= params.max_missing_endpoints_ratio <= 1.0 or params.max_missing < 0:
            raise StepFailed("max_missing must not be negative and max_missing_endpoints_ratio "
                             "must lie between 0 and 1 (0.05 allows 5%)")
        try:
            address_map = AddressMap(params.address_map)
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        try:
            old, _ = read_rows(Path(params.old), params.old_sha256)
            new, _ = read_rows(Path(params.new), params.new_sha256)
        except SnapshotError as exc:
            raise StepFailed(str(exc)) from None
        diff = compare_tables(old, new, address_map=address_map, domain_map=params.domain_map,
                              ignore=params.ignore)
        tolerances = Tolerances(params.max_missing, params.max_missing_endpoints_ratio,
                                params.max_extra)
        violations = diff.violations(tolerances)
        doc = {"old": params.old, "new": params.new, "summary": diff.summary(),
               "violations": violations, **diff.to_dict()}
        path = ctx.artifact_dir / (params.name or f"routes-diff-{ctx.safe_step_id}.json.gz")
        data = gzip.compress(json.dumps(doc, indent=1).encode(), mtime=0)
        path.with_name(path.name + ".tmp").write_bytes(data)
        os.replace(path.with_name(path.name + ".tmp"), path)
        if violations:
            sample = ", ".join(r["route"] for r in (diff.missing or diff.fewer)[:5])
            raise StepFailed(f"the new routing table differs beyond the tolerances: "
                             f"{'; '.join(violations)}. {diff.summary()}. "
                             f"{'First: ' + sample + '. ' if sample else ''}"
                             f"Full diff: {path}")
        outputs = {"summary": diff.summary(), "passed": True, "routes_old": diff.routes_old,
                   "routes_new": diff.routes_new, "missing": len(diff.missing),
                   "extra": len(diff.extra), "fewer": len(diff.fewer),
                   "missing_endpoints": diff.missing_endpoints,
                   "missing_endpoints_ratio": round(diff.missing_endpoints_ratio, 6),
                   "endpoints_old": diff.endpoints_old, "endpoints_new": diff.endpoints_new,
                   "ignored": diff.ignored,
                   "missing_sample": [r["route"] for r in diff.missing[:10]],
                   "diff_path": str(path), "diff_sha256": hashlib.sha256(data).hexdigest()}
        return Result(outputs=outputs, record={"diff_path": str(path)}, changed=False)

    def verify(self, ctx: StepContext, params: CompareRoutesParams,
               result: Result | None) -> bool | None:
        if result is None:
            return None  # comparing again is harmless
        return Path(result.outputs["diff_path"]).is_file()

    def revert_plan(self, params: CompareRoutesParams, record: dict[str, Any]) -> Plan:
        return Plan.unchanged("read-only: nothing to undo")
