"""Old routing table vs new: which routes are missing, extra, or served by fewer endpoints.

Addresses always differ between two foundations (other networks, other cell ports), so
endpoints are not matched by address. A route is its URI plus its route service URL;
within a route, endpoints are counted per identity:

* the app guid, when the source knew it (NATS registrations; ``/routes`` bodies whose
  endpoint tags carry ``app_id``);
* otherwise the *expected new address*, when the operator's address map translates the
  old address (system components on static IPs: API, UAA, login);
* otherwise an anonymous bucket, where only the count matters.

An identity whose count dropped contributes the difference to ``missing_endpoints``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from steps.routes.model import Endpoint, Table

RouteId = tuple[str, str]  # (uri, route service URL or "")


class AddressMap:
    """Old address -> expected new address. Keys are ``ip:port``, ``ip`` (port kept) or
    a CIDR block mapped onto a block of the same size (host bits kept)."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.exact: dict[str, str] = {}
        self.hosts: dict[str, str] = {}
        self.networks: list[tuple[Any, Any]] = []
        for old, new in mapping.items():
            if "/" in old:
                try:
                    source, dest = ipaddress.ip_network(old), ipaddress.ip_network(new)
                except ValueError as exc:
                    raise ValueError(f"address_map entry '{old}': {exc}") from None
                if source.prefixlen != dest.prefixlen:
                    raise ValueError(f"address_map entry '{old}' maps onto '{new}', a block "
                                     "of another size; write blocks of the same size")
                self.networks.append((source, dest))
            elif old.count(":") == 1:
                self.exact[old] = new
            else:
                self.hosts[old] = new

    def __bool__(self) -> bool:
        return bool(self.exact or self.hosts or self.networks)

    def translate(self, address: str) -> str | None:
        if address in self.exact:
            return self.exact[address]
        host, _, port = address.rpartition(":")
        if host in self.hosts:
            return f"{self.hosts[host]}:{port}"
        if self.networks:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                return None
            for source, dest in self.networks:
                if ip in source:
                    offset = int(ip) - int(source.network_address)
                    return f"{ipaddress.ip_address(int(dest.network_address) + offset)}:{port}"
        return None


@dataclass(frozen=True)
class Tolerances:
    max_missing: int = 0
    max_missing_endpoints_ratio: float = 0.0
    max_extra: int | None = None


@dataclass
class Diff:
    routes_old: int = 0
    routes_new: int = 0
    endpoints_old: int = 0
    endpoints_new: int = 0
    ignored: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    fewer: list[dict[str, Any]] = field(default_factory=list)
    missing_endpoints: int = 0

    @property
    def missing_endpoints_ratio(self) -> float:
        return self.missing_endpoints / self.endpoints_old if self.endpoints_old else 0.0

    def violations(self, tol: Tolerances) -> list[str]:
        found = []
        if len(self.missing) > tol.max_missing:
            found.append(f"{_routes(len(self.missing))} missing (at most {tol.max_missing} "
                         "allowed)")
        if self.missing_endpoints_ratio > tol.max_missing_endpoints_ratio:
            found.append(f"{self.missing_endpoints} of {self.endpoints_old} endpoints missing "
                         f"({self.missing_endpoints_ratio:.2%}; at most "
                         f"{tol.max_missing_endpoints_ratio:.2%} allowed)")
        if tol.max_extra is not None and len(self.extra) > tol.max_extra:
            extra = len(self.extra)
            found.append(f"{extra} extra route{'' if extra == 1 else 's'} (at most "
                         f"{tol.max_extra} allowed)")
        return found

    def summary(self) -> str:
        return (f"{self.routes_old} old routes, {self.routes_new} new: {len(self.missing)} "
                f"missing, {len(self.extra)} extra, {len(self.fewer)} with fewer endpoints "
                f"({self.missing_endpoints} of {self.endpoints_old} endpoints missing, "
                f"{self.missing_endpoints_ratio:.2%}); {self.ignored} ignored")

    def to_dict(self) -> dict[str, Any]:
        return {"routes_old": self.routes_old, "routes_new": self.routes_new,
                "endpoints_old": self.endpoints_old, "endpoints_new": self.endpoints_new,
                "ignored": self.ignored, "missing_endpoints": self.missing_endpoints,
                "missing_endpoints_ratio": round(self.missing_endpoints_ratio, 6),
                "missing": self.missing, "extra": self.extra, "fewer": self.fewer}


def _routes(count: int) -> str:
    return f"{count} route" if count == 1 else f"{count} routes"


def ignore_matcher(patterns: list[str]) -> re.Pattern[str] | None:
    """One regular expression for all glob patterns: one match call per route."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns))


def rename_domains(uri: str, domain_map: dict[str, str]) -> str:
    host, slash, path = uri.partition("/")
    for old, new in domain_map.items():
        if host == old or host.endswith("." + old):
            return host[: len(host) - len(old)] + new + slash + path
    return uri


def _group(table: Table, domain_map: dict[str, str]) -> dict[RouteId, list[Endpoint]]:
    grouped: dict[RouteId, list[Endpoint]] = {}
    for uri, endpoints in table.items():
        if domain_map:
            uri = rename_domains(uri, domain_map)
        for e in endpoints.values():
            key = (uri, e.route_service_url)
            bucket = grouped.get(key)
            if bucket is None:
                grouped[key] = [e]
            else:
                bucket.append(e)
    return grouped


def _route_dict(key: RouteId, endpoints: list[Endpoint]) -> dict[str, Any]:
    out: dict[str, Any] = {"route": key[0], "endpoints": len(endpoints)}
    if key[1]:
        out["route_service_url"] = key[1]
    apps = sorted({e.app for e in endpoints if e.app})
    if apps:
        out["apps"] = apps
    return out


def compare_tables(old: Table, new: Table, *, address_map: AddressMap | None = None,
                   domain_map: dict[str, str] | None = None,
                   ignore: list[str] | None = None) -> Diff:
    """``domain_map`` renames old route hosts (``old.example`` -> ``new.example``) first."""
    old_routes, new_routes = _group(old, domain_map or {}), _group(new, {})
    skip = ignore_matcher(ignore or [])
    mapper = address_map if address_map else None
    diff = Diff(endpoints_new=sum(len(v) for v in new_routes.values()))
    for key, old_eps in old_routes.items():
        if skip is not None and skip.match(key[0]):
            diff.ignored += 1
            continue
        diff.routes_old += 1
        diff.endpoints_old += len(old_eps)
        new_eps = new_routes.get(key)
        if new_eps is None:
            diff.missing.append(_route_dict(key, old_eps))
            diff.missing_endpoints += len(old_eps)
            continue
        if len(new_eps) >= len(old_eps) and mapper is None and _apps_covered(old_eps, new_eps):
            continue  # the common case, decided without building counters
        lost = _lost_endpoints(old_eps, new_eps, mapper)
        if lost:
            diff.fewer.append({"route": key[0], **({"route_service_url": key[1]} if key[1]
                                                   else {}),
                               "old": len(old_eps), "new": len(new_eps),
                               "missing": sum(lost.values()), "by": dict(sorted(lost.items()))})
            diff.missing_endpoints += sum(lost.values())
    for key, new_eps in new_routes.items():
        if skip is not None and skip.match(key[0]):
            continue
        diff.routes_new += 1
        if key not in old_routes:
            diff.extra.append(_route_dict(key, new_eps))
    diff.missing.sort(key=lambda r: r["route"])
    diff.extra.sort(key=lambda r: r["route"])
    diff.fewer.sort(key=lambda r: r["route"])
    return diff


def _apps_covered(old_eps: list[Endpoint], new_eps: list[Endpoint]) -> bool:
    if len(old_eps) == 1:
        return not old_eps[0].app or any(e.app == old_eps[0].app for e in new_eps)
    return _lost_endpoints(old_eps, new_eps, None) == {}


def _lost_endpoints(old_eps: list[Endpoint], new_eps: list[Endpoint],
                    mapper: AddressMap | None) -> dict[str, int]:
    """Identity -> how many fewer endpoints the new table has for it."""
    expected: Counter[str] = Counter()
    mapped: set[str] = set()
    for e in old_eps:
        if e.app:
            expected["app:" + e.app] += 1
            continue
        target = mapper.translate(e.address) if mapper is not None else None
        if target is not None:
            expected["address:" + target] += 1
            mapped.add(target)
        else:
            expected["unknown"] += 1
    have: Counter[str] = Counter()
    for e in new_eps:
        if e.app and "app:" + e.app in expected:
            have["app:" + e.app] += 1
        elif e.address in mapped:
            have["address:" + e.address] += 1
        else:
            # An endpoint the old side cannot name still proves the route has a backend.
            have["unknown"] += 1
    return {k: n - have[k] for k, n in expected.items() if have[k] < n}
