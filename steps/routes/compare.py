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

from steps.routes.model import ADDRESS, APP, Rows, gc_paused

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


def _renamed(rows: Rows, domain_map: dict[str, str]) -> Rows:
    if not domain_map:
        return rows
    renamed: Rows = {}
    for (uri, rs), endpoints in rows.items():
        renamed.setdefault((rename_domains(uri, domain_map), rs), []).extend(endpoints)
    return renamed


def _route_dict(key: RouteId, endpoints: list[list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"route": key[0], "endpoints": len(endpoints)}
    if key[1]:
        out["route_service_url"] = key[1]
    apps = sorted({e[APP] for e in endpoints if e[APP]})
    if apps:
        out["apps"] = apps
    return out


def compare_tables(old: Rows, new: Rows, *, address_map: AddressMap | None = None,
                   domain_map: dict[str, str] | None = None,
                   ignore: list[str] | None = None) -> Diff:
    """Compare snapshot rows (:func:`~steps.routes.model.read_rows`); ``domain_map`` renames
    old route hosts (``old.example`` -> ``new.example``) first."""
    with gc_paused():
        return _compare(_renamed(old, domain_map or {}), new, address_map or None,
                        ignore_matcher(ignore or []))


def _compare(old: Rows, new: Rows, mapper: AddressMap | None,
             skip: re.Pattern[str] | None) -> Diff:
    diff = Diff()
    for key, old_eps in old.items():
        if skip is not None and skip.match(key[0]):
            diff.ignored += 1
            continue
        diff.routes_old += 1
        diff.endpoints_old += len(old_eps)
        new_eps = new.get(key)
        if new_eps is None:
            diff.missing.append(_route_dict(key, old_eps))
            diff.missing_endpoints += len(old_eps)
            continue
        if len(new_eps) == len(old_eps):
            old_apps = [e[APP] for e in old_eps]
            # The common case: rows are sorted by app, so equal apps line up; an address
            # map only matters for endpoints whose app is unknown.
            if old_apps == [e[APP] for e in new_eps] and (mapper is None or all(old_apps)):
                continue
        lost = _lost_endpoints(old_eps, new_eps, mapper)
        if lost:
            diff.fewer.append({"route": key[0], **({"route_service_url": key[1]} if key[1]
                                                   else {}),
                               "old": len(old_eps), "new": len(new_eps),
                               "missing": sum(lost.values()), "by": dict(sorted(lost.items()))})
            diff.missing_endpoints += sum(lost.values())
    for key, new_eps in new.items():
        if skip is not None and skip.match(key[0]):
            continue
        diff.routes_new += 1
        diff.endpoints_new += len(new_eps)
        if key not in old:
            diff.extra.append(_route_dict(key, new_eps))
    diff.missing.sort(key=lambda r: r["route"])
    diff.extra.sort(key=lambda r: r["route"])
    diff.fewer.sort(key=lambda r: r["route"])
    return diff


def _lost_endpoints(old_eps: list[list[Any]], new_eps: list[list[Any]],
                    mapper: AddressMap | None) -> dict[str, int]:
    """Identity -> how many fewer endpoints the new table has for it."""
    expected: Counter[str] = Counter()
    mapped: set[str] = set()
    for e in old_eps:
        if e[APP]:
            expected["app:" + e[APP]] += 1
            continue
        target = mapper.translate(e[ADDRESS]) if mapper is not None else None
        if target is not None:
            expected["address:" + target] += 1
            mapped.add(target)
        else:
            expected["unknown"] += 1
    have: Counter[str] = Counter()
    for e in new_eps:
        if e[APP] and "app:" + e[APP] in expected:
            have["app:" + e[APP]] += 1
        elif e[ADDRESS] in mapped:
            have["address:" + e[ADDRESS]] += 1
        else:
            # An endpoint the old side cannot name still proves the route has a backend.
            have["unknown"] += 1
    return {k: n - have[k] for k, n in expected.items() if have[k] < n}
