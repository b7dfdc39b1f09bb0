"""The routing table as the snapshot stores it, and how gorouter's inputs map onto it.

A table maps a route URI (``host`` or ``host/path``) to its endpoints, keyed by address.
Both inputs are normalised here:

* gorouter ``GET /routes`` bodies: a JSON object keyed by route URI whose values are
  arrays of endpoints, either bare ``"ip:port"`` strings (gorouter before 2015-06-25)
  or objects with ``address``, ``tls``, ``route_service_url``, ``tags``, ... (later);
* NATS ``router.register`` / ``router.unregister`` payloads (gorouter ``mbus``
  ``RegistryMessage``): ``host``, ``port``, ``tls_port`` (wins over ``port`` when
  non-zero), ``uris``, ``app``, ``route_service_url`` (gorouter rejects one that does
  not start with ``https``), ``private_instance_id``, ``availability_zone``, ``protocol``.

The snapshot file is gzip-compressed JSON with a format name and version. Routes and
endpoints are sorted and the gzip header carries no timestamp, so the file's bytes depend
only on its content and its sha256 digest can vouch for it later.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

FORMAT = "paas-runbook/routes-snapshot"
VERSION = 1
ENDPOINT_FIELDS = ("address", "app", "tls", "instance_id", "az", "protocol")


class Endpoint(NamedTuple):
    """One backend of one route. A tuple keeps 100k-route tables small and fast to compare."""

    address: str
    app: str = ""
    tls: bool = False
    instance_id: str = ""
    route_service_url: str = ""
    az: str = ""
    protocol: str = ""

    def merged(self, other: Endpoint) -> Endpoint:
        """Fill fields this endpoint lacks from ``other`` (same address, richer source)."""
        return Endpoint(self.address, self.app or other.app, self.tls or other.tls,
                        self.instance_id or other.instance_id,
                        self.route_service_url or other.route_service_url,
                        self.az or other.az, self.protocol or other.protocol)


#: route URI -> address -> endpoint
Table = dict[str, dict[str, Endpoint]]


class SnapshotError(ValueError):
    """A snapshot file or a ``/routes`` body cannot be read; the message says why."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector while building or reading a big table.

    Tables are trees of tuples, strings and dicts without cycles, yet every few hundred new
    containers the collector would walk all of them again: loading 100k routes took three
    times as long with it running.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def route_key(uri: str) -> str:
    # gorouter matches hosts case-insensitively and a trailing slash names the same route.
    uri = uri.strip()
    host, slash, path = uri.partition("/")
    key = host.lower() + slash + path
    return key.rstrip("/") if path else host.lower()


def merge_into(table: Table, other: Table) -> None:
    """Union ``other`` into ``table``; the same address on the same route is one endpoint."""
    for uri, endpoints in other.items():
        mine = table.setdefault(uri, {})
        for address, endpoint in endpoints.items():
            known = mine.get(address)
            mine[address] = endpoint if known is None else known.merged(endpoint)


def count_endpoints(table: Table) -> int:
    return sum(len(endpoints) for endpoints in table.values())


# --- gorouter /routes --------------------------------------------------------------------

def table_from_routes_body(body: Any) -> Table:
    """Normalise a decoded ``/routes`` body of any gorouter era."""
    if not isinstance(body, dict):
        raise SnapshotError("the /routes body is not a JSON object keyed by route")
    table: Table = {}
    for uri, raw_endpoints in body.items():
        if not isinstance(raw_endpoints, list):
            raise SnapshotError(f"route '{uri}' in the /routes body does not hold a list")
        endpoints = table.setdefault(route_key(uri), {})
        for raw in raw_endpoints:
            endpoint = _endpoint_from_routes_entry(uri, raw)
            endpoints[endpoint.address] = endpoint
    return table


def _endpoint_from_routes_entry(uri: str, raw: Any) -> Endpoint:
    if isinstance(raw, str):  # the pre-2015 format: the address alone
        return Endpoint(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("address"), str):
        raise SnapshotError(f"route '{uri}' has an endpoint without an address")
    tags = raw.get("tags") or {}
    # route-emitter tags carry the app guid; /routes has no other app identity.
    app = str(tags.get("app_id", "")) if isinstance(tags, dict) else ""
    return Endpoint(raw["address"], app, bool(raw.get("tls", False)),
                    str(raw.get("private_instance_id") or ""),
                    str(raw.get("route_service_url") or ""),
                    str(raw.get("availability_zone") or ""), str(raw.get("protocol") or ""))


# --- NATS router.register / router.unregister -------------------------------------------

class Registration(NamedTuple):
    uris: tuple[str, ...]
    endpoint: Endpoint


def parse_registration(payload: bytes) -> Registration | None:
    """Decode a registry message; None for one gorouter would reject as well."""
    try:
        msg = json.loads(payload)
        host, uris = msg["host"], msg["uris"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(host, str) or not isinstance(uris, list) or not host:
        return None
    tls_port = msg.get("tls_port") or 0
    port = tls_port or msg.get("port") or 0
    if not isinstance(port, int) or port <= 0:
        return None
    route_service = msg.get("route_service_url") or ""
    if route_service and not str(route_service).startswith("https"):
        return None
    endpoint = Endpoint(f"{host}:{port}", str(msg.get("app") or ""), bool(tls_port),
                        str(msg.get("private_instance_id") or ""), str(route_service),
                        str(msg.get("availability_zone") or ""), str(msg.get("protocol") or ""))
    return Registration(tuple(route_key(u) for u in uris if isinstance(u, str) and u), endpoint)


# --- the snapshot file -------------------------------------------------------------------
#
# "routes" holds one row per route and route service: [uri, route_service_url, endpoints],
# each endpoint an array in ENDPOINT_FIELDS order, sorted by (app, address). That is the
# shape the comparison needs, so routes.compare reads it without rebuilding anything.

#: (uri, route service URL) -> endpoint rows in ENDPOINT_FIELDS order
Rows = dict[tuple[str, str], list[list[Any]]]
ADDRESS, APP = 0, 1


def rows_from_table(table: Table) -> Rows:
    rows: Rows = {}
    for uri, endpoints in table.items():
        for e in endpoints.values():
            rows.setdefault((uri, e.route_service_url), []).append(
                [e.address, e.app, e.tls, e.instance_id, e.az, e.protocol])
    for bucket in rows.values():
        bucket.sort(key=lambda row: (row[APP], row[ADDRESS]))
    return rows


def write_snapshot(path: Path, table: Table, meta: dict[str, Any]) -> str:
    """Write ``table`` atomically; returns the sha256 hex digest of the file."""
    with gc_paused():
        rows = rows_from_table(table)
        doc = {"format": FORMAT, "version": VERSION, "endpoint_fields": list(ENDPOINT_FIELDS),
               **meta, "routes": [[uri, rs, rows[(uri, rs)]] for uri, rs in sorted(rows)]}
        text = json.dumps(doc, separators=(",", ":"))
        del rows, doc
    data = gzip.compress(text.encode(), compresslevel=6, mtime=0)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a crash never leaves a half-written snapshot under the real name
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rows(path: Path, sha256: str | None = None) -> tuple[Rows, dict[str, Any]]:
    """Load a snapshot as rows; returns them and the metadata (everything but the routes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror or exc}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise SnapshotError(f"snapshot {path} does not match the recorded sha256 digest; "
                            "it changed after it was taken")
    try:
        with gc_paused():
            doc = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise SnapshotError(f"snapshot {path} is not a gzip-compressed JSON file ({exc})") \
            from None
    del data
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a routes snapshot (no '{FORMAT}' format marker)")
    if doc.get("version") != VERSION:
        raise SnapshotError(f"snapshot {path} has format version {doc.get('version')!r}; "
                            f"this version reads version {VERSION}")
    fields = doc.get("endpoint_fields")
    if fields != list(ENDPOINT_FIELDS):
        raise SnapshotError(f"snapshot {path} lists unexpected endpoint fields {fields!r}")
    try:
        with gc_paused():
            rows = {(uri, rs): endpoints for uri, rs, endpoints in doc.pop("routes")}
    except (TypeError, ValueError):
        raise SnapshotError(f"snapshot {path} has malformed route rows") from None
    return rows, doc


def read_snapshot(path: Path, sha256: str | None = None) -> tuple[Table, dict[str, Any]]:
    """Load a snapshot as a table (to merge or inspect); see :func:`read_rows`."""
    rows, meta = read_rows(path, sha256)
    table: Table = {}
    for (uri, rs), endpoints in rows.items():
        mine = table.setdefault(uri, {})
        for address, app, tls, instance_id, az, protocol in endpoints:
            mine[address] = Endpoint(address, app, tls, instance_id, rs, az, protocol)
    return table, meta
