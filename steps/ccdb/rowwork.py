"""The CPU side of the rewrite: decrypt, rewrite and re-encrypt a batch of rows.

Runs in the calling process for small databases and in a pool of worker processes
(one per core) for large ones, because the key derivation (PBKDF2 or 2,048 MD5 rounds
per row) is the cost floor and Python runs it one core per process. Each row's key is
derived once and used both to decrypt and to re-encrypt.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

from steps.ccdb import crypto
from steps.ccdb.hostmap import HostMap, describe
from steps.ccdb.netmap import NetworkMap
from steps.ccdb.schema import TableSpec

#: a row as selected: (id, label, iterations, value, salt, ..., plain, ...)
Row = tuple[Any, ...]
EXAMPLES_PER_COLUMN = 3


@dataclass(frozen=True)
class Work:
    """What the workers need, as plain data (secrets revealed: never log or store it)."""

    keyring: crypto.KeyRing
    hosts: dict[str, str]
    rekey_label: str | None = None
    #: old -> new CIDRs for security group destinations
    networks: dict[str, str] = field(default_factory=dict)


class Change(NamedTuple):
    """One value to write (a tuple: it crosses the process boundary once per row)."""

    row_id: int
    column: str
    old: str
    new: str
    salt: str | None
    old_label: str | None
    new_label: str | None
    iterations: int | None

    @property
    def label_changed(self) -> bool:
        return self.old_label != self.new_label


@dataclass
class Outcome:
    rows: int = 0
    last_id: int = 0
    changes: list[Change] = field(default_factory=list)
    #: per column: values whose hosts changed (rekey-only changes are not counted here)
    host_changes: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: (column, row id, label, reason) for values that do not decrypt
    errors: list[tuple[str, int, str | None, str]] = field(default_factory=list)
    #: (column, row id, destination) for security group destinations left alone because
    #: they only partly overlap an old network
    unresolved: list[tuple[str, int, str]] = field(default_factory=list)


class Worker:
    def __init__(self, work: Work) -> None:
        self.work = work
        self.hosts = HostMap(work.hosts)
        self.networks = NetworkMap(work.networks, work.hosts)

    def run(self, spec: TableSpec, rows: list[Row]) -> Outcome:
        out = Outcome(rows=len(rows), last_id=int(rows[-1][0]) if rows else 0)
        keys = self._derive_batch(spec, rows)
        for row in rows:
            self._row(spec, row, out, keys)
        return out

    def _derive_batch(self, spec: TableSpec,
                      rows: list[Row]) -> dict[tuple[str, str, int], tuple[bytes, bytes]]:
        """Every key the batch will need, derived together (SIMD lanes when compiled)."""
        wanted: dict[tuple[str, int], list[str]] = {}
        rekey = self.work.rekey_label if spec.has_label else None
        for row in rows:
            label, iterations = row[1], row[2]
            labels = [label] if rekey is None or rekey == label else [label, rekey]
            for position in range(3, 3 + 2 * len(spec.encrypted), 2):
                value, salt = row[position], row[position + 1]
                if not value or not salt:
                    continue
                rounds = (crypto.LEGACY_ROUNDS if crypto.is_legacy_salt(salt)
                          else int(iterations or crypto.DEFAULT_ITERATIONS))
                for which in labels:
                    try:
                        password = self.work.keyring.key_for(which)
                    except crypto.DecryptionFailed:
                        continue  # reported for the row by _row
                    wanted.setdefault((password, rounds), []).append(salt)
        keys: dict[tuple[str, str, int], tuple[bytes, bytes]] = {}
        for (password, rounds), salts in wanted.items():
            for salt, pair in crypto.derive_many(password, salts, rounds).items():
                keys[(password, salt, rounds)] = pair
        return keys

    def _row(self, spec: TableSpec, row: Row, out: Outcome,
             keys: dict[tuple[str, str, int], tuple[bytes, bytes]]) -> None:
        row_id, label, iterations = int(row[0]), row[1], row[2]
        rekey = self.work.rekey_label
        new_label = rekey if rekey is not None and spec.has_label else label
        pending: list[Change] = []
        position = 3
        for enc in spec.encrypted:
            value, salt = row[position], row[position + 1]
            position += 2
            if not value:  # NULL, or an empty string CC itself could not decrypt: no host
                continue
            try:
                change = self._encrypted(spec, enc.column, enc.kind, row_id, value, salt,
                                         label, new_label, iterations, keys, out)
            except crypto.DecryptionFailed as exc:
                out.errors.append((enc.column, row_id, label, str(exc)))
                return  # a row is rewritten whole or not at all
            if change is not None:
                pending.append(change)
        for column in spec.plain:
            value = row[position]
            position += 1
            if value is None:
                continue
            if column in spec.asg:
                new, moved = self.networks.rewrite_rules(value, self.hosts)
                changes = moved.changes
                out.unresolved.extend((column, row_id, part) for part in moved.unresolved)
            else:
                new, changes = self.hosts.rewrite(value)
            if new != value:
                pending.append(Change(row_id, column, value, new, None, None, None, None))
                self._note(out, column, row_id, changes)
        out.changes.extend(pending)

    def _encrypted(self, spec: TableSpec, column: str, kind: str, row_id: int, value: str,
                   salt: str | None, label: str | None, new_label: str | None,
                   iterations: int | None, keys: dict[tuple[str, str, int], tuple[bytes, bytes]],
                   out: Outcome) -> Change | None:
        if not salt:
            raise crypto.DecryptionFailed("the value has no salt")
        rounds = int(iterations or crypto.DEFAULT_ITERATIONS)
        key, iv = self._derive(self.work.keyring.key_for(label), salt, rounds, keys)
        try:
            plain = crypto.decrypt_with(value, key, iv).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise crypto.DecryptionFailed("decrypted bytes are not UTF-8 text") from exc
        is_json: bool | None = None
        if kind == "hosts" and "url" not in column:
            # No authentication tag: a wrong key passes the padding check about once in
            # 256 tries, so the JSON these columns always hold is the real proof.
            try:
                is_json = isinstance(json.loads(plain), (dict, list))
            except ValueError as exc:
                raise crypto.DecryptionFailed("decrypted value is not JSON") from exc
        new_plain = plain
        if kind == "hosts":
            explain = len(out.examples.get(column, [])) < EXAMPLES_PER_COLUMN
            new_plain, changes = self.hosts.rewrite(plain, is_json, explain)
            if new_plain != plain:
                self._note(out, column, row_id, changes)
        relabel = new_label != label
        if new_plain == plain and not relabel:
            return None
        if relabel:
            key, iv = self._derive(self.work.keyring.key_for(new_label), salt, rounds, keys)
        new_value = crypto.encrypt_with(new_plain.encode("utf-8"), key, iv)
        return Change(row_id, column, value, new_value, salt, label,
                      new_label if spec.has_label else None, iterations)

    @staticmethod
    def _derive(password: str, salt: str, rounds: int,
                cache: dict[tuple[str, str, int], tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
        if crypto.is_legacy_salt(salt):
            rounds = crypto.LEGACY_ROUNDS  # the row's iteration count plays no part here
        found = cache.get((password, salt, rounds))
        if found is None:
            found = cache[(password, salt, rounds)] = crypto.derive(password, salt, rounds)
        return found

    @staticmethod
    def _note(out: Outcome, column: str, row_id: int, changes: list[Any]) -> None:
        out.host_changes[column] = out.host_changes.get(column, 0) + 1
        shown = out.examples.setdefault(column, [])
        if len(shown) < EXAMPLES_PER_COLUMN and changes:
            shown.append(f"#{row_id} {describe(changes[0])}")


# -- running batches, in this process or in a pool -----------------------------------------

_WORKER: Worker | None = None


def _init(work: Work) -> None:
    global _WORKER
    _WORKER = Worker(work)


def _remote(job: tuple[TableSpec, list[Row]]) -> Outcome:
    assert _WORKER is not None
    return _WORKER.run(*job)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


class Processor:
    """Maps batches to outcomes, in order; a pool when ``workers > 1``.

    At most ``2 * workers + 1`` batches are in flight, so a large table streams instead
    of being read into memory ahead of the writer.
    """

    def __init__(self, work: Work, workers: int = 1) -> None:
        self.work = work
        self.workers = workers
        self._pool: Any = None
        self._local = Worker(work) if workers <= 1 else None

    def __enter__(self) -> Self:
        if self._local is None:
            # spawn, not fork: the engine may hold threads and open connections.
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.workers, initializer=_init, initargs=(self.work,))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def map(self, spec: TableSpec, batches: Iterable[list[Row]]) -> Iterator[Outcome]:
        if self._local is not None:
            for rows in batches:
                yield self._local.run(spec, rows)
            return
        window = threading.BoundedSemaphore(2 * self.workers + 1)
        stop = threading.Event()

        def feed() -> Iterator[tuple[TableSpec, list[Row]]]:
            # Runs in the pool's feeder thread; gives up when the consumer stopped early.
            for rows in batches:
                while not window.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                yield spec, rows

        try:
            for outcome in self._pool.imap(_remote, feed()):
                window.release()
                yield outcome
        finally:
            stop.set()
