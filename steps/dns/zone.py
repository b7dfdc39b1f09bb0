"""The interface both DNS providers implement, and how a step opens one from its target.

Two providers edit a zone:

* ``powerdns-db``: the BOSH director's PowerDNS tables (``domains``/``records``) in
  PostgreSQL, edited with SQL (:mod:`steps.dns.powerdns_db`, needs psycopg);
* ``rfc2136``: any server accepting dynamic updates signed with TSIG: BIND, PowerDNS,
  Knot (:mod:`steps.dns.rfc2136`, needs dnspython). Records are read by zone transfer
  (AXFR) signed with the same key.

This module imports only the standard library and ``runbook.api``: the client modules,
and through them psycopg and dnspython, are imported when a step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from runbook.api import MissingDependency, Secret, StepFailed
from steps.dns.record import Rec

Provider = Literal["powerdns-db", "rfc2136"]


@dataclass
class ZoneState:
    """What a provider knows about one zone. ``last_id`` is the highest record row id in
    the whole database (SQL only): rows above it were written after this was read."""

    zone: str
    exists: bool
    records: list[Rec] = field(default_factory=list)
    domain_id: int | None = None
    last_id: int | None = None


@dataclass
class Added:
    records: list[Rec]  # as written, with row ids where the provider has them
    domain_id: int | None = None


class ZoneClient(Protocol):
    #: where the zone lives, for messages and plans (never holds a secret)
    where: str
    #: whether ``add`` can create a zone that does not exist yet
    can_create_zone: bool

    def read(self, zone: str) -> ZoneState: ...

    def add(self, zone: str, records: list[Rec], *, create_zone: bool) -> Added:
        """Add all records (and the zone) at once, or nothing."""
        ...

    def remove(self, zone: str, records: list[Rec]) -> int:
        """Remove exactly these records (by row id where they have one); return how many
        were there. Records already gone are not an error."""
        ...

    def remove_added_after(self, zone: str, records: list[Rec], last_id: int) -> int:
        """Remove rows equal to ``records`` written after row ``last_id`` (undo of an
        apply that stopped before its row ids were recorded)."""
        ...

    def drop_zone_if_empty(self, zone: str, domain_id: int) -> bool:
        """Remove a zone this run created, but only when it holds no record any more."""
        ...

    def set_ttls(self, zone: str, changes: list[tuple[Rec, int]], *, strict: bool) -> list[Rec]:
        """Give each record (as observed, TTL included) its new TTL. ``strict``: if any
        record changed since it was observed, change nothing and fail; otherwise skip the
        records that changed. Returns the records changed (with their old TTL)."""
        ...

    def close(self) -> None: ...


def _text(value: Any) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)


def open_client(provider: Provider, target: dict[str, Any], *, dsn: Secret | None = None,
                server: str | None = None, port: int | None = None,
                timeout: float = 10.0) -> ZoneClient:
    """A client for ``provider`` configured from the target's ``powerdns`` or ``dns`` key,
    with explicit step parameters taking precedence."""
    if provider == "powerdns-db":
        settings = target.get("powerdns") or {}
        chosen = dsn if dsn is not None else settings.get("dsn")
        if chosen is None:
            raise StepFailed("no PowerDNS database given: set 'dsn' under the target's "
                             "'powerdns' key or the step's 'dsn' parameter")
        try:
            from steps.dns.powerdns_db import PowerDnsDb
        except ImportError as exc:
            raise MissingDependency(exc.name or "psycopg", "dns") from None
        return PowerDnsDb(_text(chosen), timeout=timeout)
    settings = target.get("dns") or {}
    host = server or settings.get("server")
    if not host:
        raise StepFailed("no DNS server given: set 'server' under the target's 'dns' key "
                         "or the step's 'server' parameter")
    key_name = settings.get("tsig_key_name")
    secret = settings.get("tsig_secret")
    if key_name and secret is not None and not isinstance(secret, Secret):
        raise StepFailed("the target's dns.tsig_secret must be a secret reference like "
                         "${env:NAME}; secrets are never written into a runbook")
    try:
        from steps.dns.rfc2136 import Rfc2136, TsigKey
    except ImportError as exc:
        raise MissingDependency(exc.name or "dns", "dns") from None
    key = None
    if key_name and secret is not None:
        key = TsigKey(str(key_name), str(settings.get("tsig_algorithm", "hmac-sha256")), secret)
    return Rfc2136(str(host), int(port or settings.get("port", 53)), key, timeout=timeout)
