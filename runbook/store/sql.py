"""The Store on SQL: SQLite (WAL, synchronous=FULL) or PostgreSQL (psycopg).

Every method is one transaction. ``save_step`` writes the step's new state, outputs and
record together with its event row, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from runbook.errors import CorruptState, LockHeld, StoreError, UnknownRun
from runbook.store.base import Event, RunRow, StepRow, dumps, loads, utcnow

SCHEMA_VERSION = 1

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runbook_schema (version INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, runbook TEXT NOT NULL, path TEXT NOT NULL,
        digest TEXT NOT NULL, text TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
        created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, meta TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT NOT NULL, key TEXT NOT NULL, step_id TEXT NOT NULL, state TEXT NOT NULL,
        seq BIGINT NOT NULL, attempt INTEGER NOT NULL, started_at TEXT, finished_at TEXT,
        outputs TEXT NOT NULL, record TEXT NOT NULL, error TEXT, info TEXT NOT NULL,
        PRIMARY KEY (run_id, key))""",
    """CREATE INDEX IF NOT EXISTS steps_by_step_id ON steps (step_id)""",
    """CREATE TABLE IF NOT EXISTS events (
        seq {serial}, run_id TEXT NOT NULL, at TEXT NOT NULL, key TEXT NOT NULL,
        kind TEXT NOT NULL, from_state TEXT, to_state TEXT, detail TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, seq)""",
    """CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL)""",
]

STEP_COLS = ("run_id", "key", "step_id", "state", "seq", "attempt", "started_at",
             "finished_at", "outputs", "record", "error", "info")
RUN_COLS = ("run_id", "runbook", "path", "digest", "text", "kind", "state", "created_at",
            "started_at", "finished_at", "meta")


class SqlStore:
    def __init__(self, url: str, connect: Callable[[], Any], dialect: str) -> None:
        self.url = url
        self.dialect = dialect
        self._lock = threading.RLock()
        self._conn = connect()
        self._ph = "?" if dialect == "sqlite" else "%s"
        self._migrate()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def sqlite(cls, path: str) -> "SqlStore":
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

        def connect() -> sqlite3.Connection:
            try:
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as exc:
                raise CorruptState(f"the state file {path} is not a usable SQLite database "
                                   f"({exc}); move it aside or point --state elsewhere") from None
            return conn

        return cls(f"sqlite:///{path}", connect, "sqlite")

    @classmethod
    def postgres(cls, url: str) -> "SqlStore":
        try:
            import psycopg
        except ImportError:
            from runbook.errors import MissingDependency

            raise MissingDependency("psycopg", "postgres") from None

        def connect() -> Any:
            try:
                return psycopg.connect(url, autocommit=True)
            except psycopg.OperationalError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
                raise StoreError(f"cannot reach the PostgreSQL state store: {first}") from None

        return cls(_mask_url(url), connect, "postgres")

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            if self.dialect == "sqlite":
                cur = self._conn.cursor()
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    yield cur
                    cur.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    if self._conn.in_transaction:
                        cur.execute("ROLLBACK")
                    raise CorruptState(f"the state store failed: {exc}; "
                                       "if the file is damaged, restore it from a backup") from None
                except BaseException:
                    if self._conn.in_transaction:
                        cur.execute("ROLLBACK")
                    raise
            else:
                with self._conn.transaction():
                    with self._conn.cursor() as cur:
                        yield cur

    def _sql(self, text: str) -> str:
        return text.replace("?", self._ph)

    def _migrate(self) -> None:
        serial = ("INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite"
                  else "BIGSERIAL PRIMARY KEY")
        with self._tx() as cur:
            for statement in SCHEMA:
                cur.execute(statement.format(serial=serial))
            cur.execute("SELECT version FROM runbook_schema")
            row = cur.fetchone()
            if row is None:
                cur.execute(self._sql("INSERT INTO runbook_schema (version) VALUES (?)"),
                            (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise StoreError(f"the state store was written by a newer paas-runbook "
                                 f"(schema {row[0]}); upgrade paas-runbook")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, run: RunRow) -> None:
        with self._tx() as cur:
            cur.execute(self._sql(f"INSERT INTO runs ({', '.join(RUN_COLS)}) VALUES "
                                  f"({', '.join('?' * len(RUN_COLS))})"),
                        (run.run_id, run.runbook, run.path, run.digest, run.text, run.kind,
                         run.state, run.created_at, run.started_at, run.finished_at,
                         dumps(run.meta)))
            self._event(cur, run.run_id, "", "run_created", None, run.state, {})

    def _run(self, row: Any) -> RunRow:
        values = dict(zip(RUN_COLS, row, strict=True))
        values["meta"] = loads(values["meta"], f"run {values['run_id']}") or {}
        return RunRow(**values)

    def find_run(self, run_id: str) -> RunRow | None:
        with self._tx() as cur:
            cur.execute(self._sql(f"SELECT {', '.join(RUN_COLS)} FROM runs WHERE run_id = ?"),
                        (run_id,))
            row = cur.fetchone()
        return self._run(row) if row else None

    def get_run(self, run_id: str) -> RunRow:
        run = self.find_run(run_id)
        if run is None:
            raise UnknownRun(f"no run '{run_id}' in {self.url}; list runs with: runbook history")
        return run

    def list_runs(self) -> list[RunRow]:
        with self._tx() as cur:
            cur.execute(f"SELECT {', '.join(RUN_COLS)} FROM runs ORDER BY created_at")
            return [self._run(r) for r in cur.fetchall()]

    def set_run_state(self, run_id: str, state: str, *, event: str,
                      detail: dict[str, Any] | None = None, **fields: Any) -> None:
        allowed = {"started_at", "finished_at"}
        assert set(fields) <= allowed, fields
        with self._tx() as cur:
            cur.execute(self._sql("SELECT state FROM runs WHERE run_id = ?"), (run_id,))
            row = cur.fetchone()
            if row is None:
                raise UnknownRun(f"no run '{run_id}'")
            sets = ", ".join(["state = ?"] + [f"{k} = ?" for k in fields])
            cur.execute(self._sql(f"UPDATE runs SET {sets} WHERE run_id = ?"),
                        (state, *fields.values(), run_id))
            self._event(cur, run_id, "", event, row[0], state, detail or {})

    def update_run_meta(self, run_id: str, meta: dict[str, Any]) -> None:
        with self._tx() as cur:
            cur.execute(self._sql("UPDATE runs SET meta = ? WHERE run_id = ?"),
                        (dumps(meta), run_id))

    # -- steps ---------------------------------------------------------------------------
    def steps(self, run_id: str) -> dict[str, StepRow]:
        with self._tx() as cur:
            cur.execute(self._sql(f"SELECT {', '.join(STEP_COLS)} FROM steps WHERE run_id = ?"),
                        (run_id,))
            rows = cur.fetchall()
        out = {}
        for r in rows:
            v = dict(zip(STEP_COLS, r, strict=True))
            where = f"step {v['key']} of run {run_id}"
            v["outputs"] = loads(v["outputs"], where) or {}
            v["record"] = loads(v["record"], where) or {}
            v["error"] = loads(v["error"], where)
            v["info"] = loads(v["info"], where) or {}
            out[v["key"]] = StepRow(**v)
        return out

    def save_step(self, row: StepRow, *, event: str, from_state: str | None,
                  detail: dict[str, Any] | None = None) -> None:
        with self._tx() as cur:
            row.seq = self._event(cur, row.run_id, row.key, event, from_state, row.state,
                                  detail or {})
            values = (row.run_id, row.key, row.step_id, row.state, row.seq, row.attempt,
                      row.started_at, row.finished_at, dumps(row.outputs), dumps(row.record),
                      None if row.error is None else dumps(row.error), dumps(row.info))
            updates = ", ".join(f"{c} = excluded.{c}" for c in STEP_COLS[2:])
            cur.execute(self._sql(f"INSERT INTO steps ({', '.join(STEP_COLS)}) VALUES "
                                  f"({', '.join('?' * len(STEP_COLS))}) "
                                  f"ON CONFLICT (run_id, key) DO UPDATE SET {updates}"), values)

    # -- events --------------------------------------------------------------------------
    def _event(self, cur: Any, run_id: str, key: str, kind: str, from_state: str | None,
               to_state: str | None, detail: dict[str, Any]) -> int:
        cur.execute(self._sql("INSERT INTO events (run_id, at, key, kind, from_state, to_state, "
                              "detail) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq"),
                    (run_id, utcnow(), key, kind, from_state, to_state, dumps(detail)))
        return int(cur.fetchone()[0])

    def add_event(self, run_id: str, key: str, kind: str, detail: dict[str, Any]) -> None:
        with self._tx() as cur:
            self._event(cur, run_id, key, kind, None, None, detail)

    def events(self, run_id: str) -> list[Event]:
        with self._tx() as cur:
            cur.execute(self._sql("SELECT run_id, seq, at, key, kind, from_state, to_state, "
                                  "detail FROM events WHERE run_id = ? ORDER BY seq"), (run_id,))
            rows = cur.fetchall()
        return [Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], loads(r[7], "an event") or {})
                for r in rows]

    def durations(self, step_id: str, kind: str = "apply") -> list[float]:
        """Past durations of a step id across runs (succeeded ones), oldest first."""
        field_start, field_end = ("started_at", "finished_at")
        with self._tx() as cur:
            cur.execute(self._sql(f"SELECT {field_start}, {field_end}, info FROM steps WHERE "
                                  "step_id = ? AND state IN ('succeeded', 'reverted') "
                                  "ORDER BY seq"), (step_id,))
            rows = cur.fetchall()
        out = []
        for start, end, info in rows:
            if kind == "revert":
                seconds = (loads(info, "step info") or {}).get("revert_seconds")
                if seconds is not None:
                    out.append(float(seconds))
            elif start and end:
                out.append((datetime.fromisoformat(end) - datetime.fromisoformat(start))
                           .total_seconds())
        return out

    # -- locks ---------------------------------------------------------------------------
    def acquire_lock(self, name: str, holder: dict[str, Any],
                     steal_if: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Take lock ``name``; a different holder raises LockHeld unless ``steal_if`` says
        the holder is gone. ``steal_if`` may read the store, so it runs outside the
        transaction, and the swap then only happens if the holder is still the same."""
        for _ in range(5):
            current = self.lock_holder(name)
            if current is not None:
                same = current.get("run") == holder.get("run") and \
                    current.get("pid") == holder.get("pid")
                if not same and not (steal_if and steal_if(current)):
                    raise LockHeld(name, current)
            with self._tx() as cur:
                cur.execute(self._sql("SELECT holder FROM locks WHERE name = ?"), (name,))
                row = cur.fetchone()
                now = loads(row[0], f"lock {name}") if row else None
                if now != current:
                    continue  # someone else moved first: look again
                if row is None:
                    cur.execute(self._sql("INSERT INTO locks (name, holder) VALUES (?, ?)"),
                                (name, dumps(holder)))
                else:
                    cur.execute(self._sql("UPDATE locks SET holder = ? WHERE name = ?"),
                                (dumps(holder), name))
                return
        raise LockHeld(name, self.lock_holder(name) or {})

    def release_lock(self, name: str, holder_run: str | None = None) -> None:
        with self._tx() as cur:
            if holder_run is None:
                cur.execute(self._sql("DELETE FROM locks WHERE name = ?"), (name,))
                return
            cur.execute(self._sql("SELECT holder FROM locks WHERE name = ?"), (name,))
            row = cur.fetchone()
            if row and (loads(row[0], f"lock {name}") or {}).get("run") == holder_run:
                cur.execute(self._sql("DELETE FROM locks WHERE name = ?"), (name,))

    def lock_holder(self, name: str) -> dict[str, Any] | None:
        with self._tx() as cur:
            cur.execute(self._sql("SELECT holder FROM locks WHERE name = ?"), (name,))
            row = cur.fetchone()
        return loads(row[0], f"lock {name}") if row else None

    def locks(self) -> dict[str, dict[str, Any]]:
        with self._tx() as cur:
            cur.execute("SELECT name, holder FROM locks ORDER BY name")
            return {r[0]: loads(r[1], "a lock") or {} for r in cur.fetchall()}


def _mask_url(url: str) -> str:
    """postgresql://user:secret@host/db → postgresql://user:***@host/db."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


