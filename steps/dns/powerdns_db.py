"""The BOSH PowerDNS database as a zone client (psycopg).

Only the columns of the BOSH schema are written (``domains``: name, type; ``records``:
domain_id, name, type, content, ttl, prio, change_date), so the same SQL serves the
director's PowerDNS 3 tables and a PowerDNS 4 schema. ``change_date`` is set to the
current time on every row written: for a NATIVE zone whose SOA serial is 0, PowerDNS
derives the serial from the newest change_date, so secondaries notice the change.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import psycopg

from runbook.api import StepFailed
from steps.dns.record import Rec
from steps.dns.zone import Added, ZoneState

_COLUMNS = "id, name, type, content, ttl, prio"


def describe_dsn(dsn: str) -> str:
    """``postgresql://user@host:port/db`` without the password, for messages."""
    if "://" not in dsn:
        parts = dict(p.split("=", 1) for p in dsn.split() if "=" in p)
        return (f"postgresql://{parts.get('user', '')}@{parts.get('host', 'localhost')}:"
                f"{parts.get('port', '5432')}/{parts.get('dbname', '')}")
    url = urlsplit(dsn)
    user = f"{url.username}@" if url.username else ""
    return f"{url.scheme}://{user}{url.hostname or 'localhost'}:{url.port or 5432}{url.path}"


def _row(row: tuple[Any, ...]) -> Rec:
    return Rec(id=int(row[0]), name=str(row[1] or ""), type=str(row[2] or ""),
               content=str(row[3] or ""), ttl=int(row[4] or 0),
               prio=None if row[5] is None else int(row[5]))


class PowerDnsDb:
    """Reads and edits one PowerDNS database; every edit is a single transaction."""

    can_create_zone = True

    def __init__(self, dsn: str, *, timeout: float = 10.0) -> None:
        self.where = f"PowerDNS database {describe_dsn(dsn)}"
        try:
            self._conn = psycopg.connect(dsn, connect_timeout=max(1, int(timeout)),
                                          autocommit=True)
        except psycopg.Error as exc:
            # The driver's text names host and user but never the password.
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StepFailed(f"cannot connect to the {self.where} ({reason}); check that "
                             "PostgreSQL runs there and the target's powerdns.dsn; "
                             "nothing was changed") from None

    def close(self) -> None:
        self._conn.close()

    def _fail(self, exc: psycopg.Error, doing: str) -> StepFailed:
        self._conn.rollback()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StepFailed(f"{doing} in the {self.where} failed ({reason}); the transaction "
                          "was rolled back, nothing was changed")

    def read(self, zone: str) -> ZoneState:
        try:
            with self._conn.transaction():
                found = self._conn.execute("SELECT id FROM domains WHERE name = %s",
                                           (zone,)).fetchone()
                last = self._conn.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()
                last_id = int(last[0]) if last else 0
                if found is None:
                    return ZoneState(zone, exists=False, last_id=last_id)
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM records WHERE domain_id = %s ORDER BY id",
                    (found[0],)).fetchall()
        except psycopg.Error as exc:
            raise self._fail(exc, f"reading zone {zone}") from None
        return ZoneState(zone, exists=True, records=[_row(r) for r in rows],
                         domain_id=int(found[0]), last_id=last_id)

    def add(self, zone: str, records: list[Rec], *, create_zone: bool) -> Added:
        now = int(time.time())
        written: list[Rec] = []
        try:
            with self._conn.transaction():
                if create_zone:
                    row = self._conn.execute(
                        "INSERT INTO domains (name, type) VALUES (%s, 'NATIVE') RETURNING id",
                        (zone,)).fetchone()
                else:
                    row = self._conn.execute("SELECT id FROM domains WHERE name = %s",
                                             (zone,)).fetchone()
                    if row is None:
                        raise StepFailed(f"zone {zone} disappeared from the {self.where} "
                                         "since it was read; nothing was changed")
                assert row is not None
                domain_id = int(row[0])
                for rec in records:
                    got = self._conn.execute(
                        "INSERT INTO records (domain_id, name, type, content, ttl, prio, "
                        "change_date) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                        (domain_id, rec.name, rec.type, rec.content, rec.ttl, rec.prio, now),
                    ).fetchone()
                    assert got is not None
                    written.append(Rec(rec.name, rec.type, rec.content, rec.ttl, rec.prio,
                                       int(got[0])))
        except psycopg.errors.UniqueViolation:
            self._conn.rollback()
            raise StepFailed(f"zone {zone} was created in the {self.where} by someone else "
                             "since it was read; nothing was changed, plan again") from None
        except psycopg.Error as exc:
            raise self._fail(exc, f"adding records to zone {zone}") from None
        return Added(written, domain_id)

    def remove(self, zone: str, records: list[Rec]) -> int:
        ids = [r.id for r in records if r.id is not None]
        try:
            with self._conn.transaction():
                gone = self._conn.execute(
                    "DELETE FROM records WHERE id = ANY(%s) AND domain_id = "
                    "(SELECT id FROM domains WHERE name = %s) RETURNING id", (ids, zone),
                ).fetchall()
        except psycopg.Error as exc:
            raise self._fail(exc, f"removing records from zone {zone}") from None
        return len(gone)

    def remove_added_after(self, zone: str, records: list[Rec], last_id: int) -> int:
        removed = 0
        try:
            with self._conn.transaction():
                for rec in records:
                    gone = self._conn.execute(
                        "DELETE FROM records WHERE id = (SELECT min(r.id) FROM records r "
                        "JOIN domains d ON d.id = r.domain_id WHERE d.name = %s AND r.id > %s "
                        "AND r.name = %s AND r.type = %s AND r.content = %s) RETURNING id",
                        (zone, last_id, rec.name, rec.type, rec.content)).fetchall()
                    removed += len(gone)
        except psycopg.Error as exc:
            raise self._fail(exc, f"removing records from zone {zone}") from None
        return removed

    def drop_zone_if_empty(self, zone: str, domain_id: int) -> bool:
        try:
            with self._conn.transaction():
                gone = self._conn.execute(
                    "DELETE FROM domains WHERE id = %s AND name = %s AND NOT EXISTS "
                    "(SELECT 1 FROM records WHERE domain_id = %s) RETURNING id",
                    (domain_id, zone, domain_id)).fetchall()
        except psycopg.Error as exc:
            raise self._fail(exc, f"removing zone {zone}") from None
        return bool(gone)

    def set_ttls(self, zone: str, changes: list[tuple[Rec, int]], *, strict: bool) -> list[Rec]:
        now = int(time.time())
        done: list[Rec] = []
        try:
            with self._conn.transaction():
                for rec, ttl in changes:
                    # The row must still hold what was observed: never overwrite a change
                    # someone made since.
                    cur = self._conn.execute(
                        "UPDATE records SET ttl = %s, change_date = %s WHERE id = %s AND "
                        "name = %s AND type = %s AND content = %s AND ttl = %s",
                        (ttl, now, rec.id, rec.name, rec.type, rec.content, rec.ttl))
                    if cur.rowcount == 1:
                        done.append(rec)
                    elif strict:
                        raise StepFailed(f"record {rec.line()} changed in the {self.where} "
                                         "since it was read; nothing was changed, plan again")
        except psycopg.Error as exc:
            raise self._fail(exc, f"changing TTLs in zone {zone}") from None
        return done
