"""Scan, apply, verify and revert a host rewrite of a Cloud Controller database.

The step class (``steps.ccdb.step``) turns parameters into a :class:`Config` and calls
these functions; they hold the integration libraries so ``runbook validate`` never loads
them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steps.ccdb import crypto
from steps.ccdb import database as db
from steps.ccdb.hostmap import HostMap
from steps.ccdb.netmap import NetworkMap
from steps.ccdb.rowwork import Outcome, Processor, Work, Worker, default_workers
from steps.ccdb.schema import Discovered, TableSpec

#: below this many rows a worker pool costs more to start than it saves
POOL_THRESHOLD = 2000


class RewriteError(Exception):
    """The rewrite cannot go on; the message says what happened and what to do."""


@dataclass(frozen=True)
class Config:
    dsn: str
    work: Work
    batch_size: int = 1000
    tables: list[str] = field(default_factory=list)
    workers: int = 0
    run_key: str = ""


@dataclass
class Scan:
    """What one pass over the database found (plain data, no secrets)."""

    rows: dict[str, int] = field(default_factory=dict)             # table -> rows read
    changes: dict[str, int] = field(default_factory=dict)          # table.column -> values
    hosts: dict[str, int] = field(default_factory=dict)            # table.column -> host hits
    relabel: dict[str, int] = field(default_factory=dict)          # table -> rows relabelled
    examples: dict[str, list[str]] = field(default_factory=dict)   # table.column -> lines
    errors: dict[tuple[str, str, str | None], list[int]] = field(default_factory=dict)
    unresolved: dict[str, list[str]] = field(default_factory=dict)  # table.column -> lines

    def add(self, spec: TableSpec, outcome: Outcome) -> None:
        name = spec.name
        self.rows[name] = self.rows.get(name, 0) + outcome.rows
        relabelled: set[int] = set()
        for change in outcome.changes:
            key = f"{name}.{change.column}"
            self.changes[key] = self.changes.get(key, 0) + 1
            if change.label_changed:
                relabelled.add(change.row_id)
        if relabelled:
            self.relabel[name] = self.relabel.get(name, 0) + len(relabelled)
        for column, count in outcome.host_changes.items():
            key = f"{name}.{column}"
            self.hosts[key] = self.hosts.get(key, 0) + count
            shown = self.examples.setdefault(key, [])
            shown.extend(outcome.examples.get(column, [])[: 3 - len(shown)])
        for column, row_id, label, _reason in outcome.errors:
            self.errors.setdefault((name, column, label), []).append(row_id)
        for column, row_id, part in outcome.unresolved:
            self.unresolved.setdefault(f"{name}.{column}", []).append(f"#{row_id} {part}")

    def error_sentence(self) -> str:
        parts = []
        ordered = sorted(self.errors.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2])))
        for (table, column, label), ids in ordered:
            shown = ", ".join(str(i) for i in ids[:5])
            which = f"key label {label!r}" if label is not None else "no key label"
            parts.append(f"{table}.{column}: {len(ids)} value(s) with {which} do not decrypt "
                         f"(row ids {shown}{', ...' if len(ids) > 5 else ''})")
        return ("; ".join(parts) + ". The key configured for that label (db_encryption_key for "
                "NULL or unknown labels) is wrong or missing; nothing was changed")

    def to_facts(self, discovered: Discovered, where: str) -> dict[str, Any]:
        tables = []
        for spec in discovered.tables:
            columns = [{"column": c, "encrypted": spec.is_encrypted(c),
                        "change": self.changes.get(f"{spec.name}.{c}", 0),
                        "hosts": self.hosts.get(f"{spec.name}.{c}", 0),
                        "examples": self.examples.get(f"{spec.name}.{c}", [])}
                       for c in spec.columns]
            tables.append({"table": spec.name, "rows": self.rows.get(spec.name, 0),
                           "relabel": self.relabel.get(spec.name, 0), "columns": columns})
        return {"database": where, "era": discovered.era, "tables": tables,
                "undecryptable": self.error_sentence() if self.errors else "",
                "unresolved_destinations": {k: v[:10] for k, v in self.unresolved.items()}}


def _open(config: Config) -> tuple[Any, Discovered]:
    try:
        conn = db.connect(config.dsn)
        discovered = db.discover(conn, config.tables or None)
    except db.CcdbError as exc:
        raise RewriteError(str(exc)) from None
    if not discovered.tables:
        conn.close()
        raise RewriteError(f"no Cloud Controller tables with encrypted or URL columns found at "
                           f"{db.where(config.dsn)}"
                           + (f" (tables filter: {', '.join(config.tables)})" if config.tables
                              else "") + "; is this the CC database?")
    return conn, discovered


def _check(config: Config, discovered: Discovered) -> None:
    HostMap(config.work.hosts)  # raises HostMapError with a sentence
    NetworkMap(config.work.networks, config.work.hosts)
    label = config.work.rekey_label
    if label is not None and label not in config.work.keyring.keys:
        known = ", ".join(sorted(config.work.keyring.keys)) or "none"
        raise RewriteError(f"rekey_to_label {label!r} is not among the configured "
                           f"database_encryption keys (known labels: {known})")


def _workers(config: Config, conn: Any, discovered: Discovered) -> int:
    if config.workers:
        return config.workers
    total = 0
    for spec in discovered.tables:
        row = conn.execute(f'SELECT count(*) FROM "{spec.name}"').fetchone()
        total += int(row[0]) if row else 0
    conn.commit()
    return default_workers() if total >= POOL_THRESHOLD else 1


def scan(config: Config,
         on_batch: Callable[[], None] = lambda: None) -> tuple[Scan, Discovered, str]:
    """A read-only pass: what would change, what does not decrypt."""
    conn, discovered = _open(config)
    try:
        _check(config, discovered)
        result = Scan()
        with Processor(config.work, _workers(config, conn, discovered)) as processor:
            for spec in discovered.tables:
                for outcome in processor.map(spec, db.stream(conn, spec, config.batch_size)):
                    result.add(spec, outcome)
                    on_batch()
        return result, discovered, db.where(config.dsn)
    finally:
        conn.close()


def apply(config: Config, checkpoint: Callable[[dict[str, Any]], None],
          on_batch: Callable[[], None], log: logging.Logger) -> dict[str, Any]:
    """Rewrite in batches, each batch one transaction with its before-image.

    The worker processes start first, so they import while the keys are tried on a sample
    of rows and the table digests are taken.
    """
    reader, discovered = _open(config)
    writer: Any = None
    try:
        writer = db.connect(config.dsn)
        _check(config, discovered)
        workers = _workers(config, reader, discovered)
        with Processor(config.work, workers) as processor:
            preflight = Scan()
            probe = Worker(config.work)
            for spec in discovered.tables:
                if spec.encrypted:
                    preflight.add(spec, probe.run(spec, db.sample(reader, spec)))
            reader.commit()
            if preflight.errors:
                raise RewriteError(preflight.error_sentence())
            db.ensure_before_image(writer)
            for spec in discovered.tables:
                db.save_digest(writer, config.run_key, spec.name,
                               db.digest(writer, spec, config.run_key))
            record = {"before_image_table": db.BEFORE_IMAGE, "run_key": config.run_key,
                      "database": db.where(config.dsn), "changed": {}}
            checkpoint(record)
            log.info("rewriting with %d process(es); key derivation: %s", workers,
                     crypto.accelerator())
            done = Scan()
            for spec in discovered.tables:
                for outcome in processor.map(spec, db.stream(reader, spec, config.batch_size)):
                    if outcome.errors:
                        done.add(spec, outcome)
                        # every table: an earlier attempt may have used another filter
                        restored = db.restore(writer, config.run_key, db.discover(writer, None))
                        log.warning("restored %d value(s) after a value failed to decrypt",
                                    sum(restored.values()))
                        raise RewriteError(done.error_sentence())
                    db.write_batch(writer, config.run_key, spec, outcome.changes)
                    done.add(spec, outcome)
                    on_batch()
        record["changed"] = dict(sorted(done.changes.items()))
        record["relabelled_rows"] = dict(sorted(done.relabel.items()))
        return record
    except db.CcdbError as exc:
        raise RewriteError(str(exc)) from None
    finally:
        reader.close()
        if writer is not None:
            writer.close()


def verify(config: Config, log: logging.Logger) -> bool:
    """Every value decrypts, no old host is left, every row sits on the requested label,
    the values written are still there, and untouched rows are byte-identical."""
    found, discovered, _where = scan(config)
    problems: list[str] = []
    if found.errors:
        problems.append(found.error_sentence())
    left = {k: v for k, v in found.hosts.items() if v}
    if left:
        problems.append("old hosts remain in " + ", ".join(f"{k} ({v})" for k, v in left.items()))
    if found.relabel:
        problems.append("rows not yet on the new key label: "
                        + ", ".join(f"{k} ({v})" for k, v in found.relabel.items()))
    conn = db.connect(config.dsn)
    try:
        if db.has_before_image(conn):
            saved = db.saved_digests(conn, config.run_key)
            for spec in discovered.tables:
                if db.touched_mismatch(conn, config.run_key, spec):
                    problems.append(f"{spec.name}: values written by this run were changed since")
                if spec.name in saved and db.digest(conn, spec, config.run_key) != saved[spec.name]:
                    problems.append(f"{spec.name}: rows outside the before-image changed, or the "
                                    "before-image would not restore the original")
    finally:
        conn.close()
    for problem in problems:
        log.warning("ccdb.rewrite_hosts verify: %s", problem)
    return not problems


def revert(config: Config, run_key: str) -> dict[str, int]:
    conn = db.connect(config.dsn)
    try:
        if not db.has_before_image(conn):
            return {}
        discovered = db.discover(conn, None)
        return db.restore(conn, run_key, discovered)
    except db.CcdbError as exc:
        raise RewriteError(str(exc)) from None
    finally:
        conn.close()

