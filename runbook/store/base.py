"""The narrow interface between the engine and its durable state.

Rows are plain data; JSON columns never hold Python objects. One SQL implementation
serves SQLite and PostgreSQL (the dialects differ only in placeholders, upsert and
autoincrement), picked by URL in :func:`open_store`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from runbook.errors import CorruptState


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class RunRow:
    run_id: str
    runbook: str
    path: str
    digest: str
    text: str
    kind: str  # "run" | "rehearsal"
    state: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepRow:
    run_id: str
    key: str  # step id, or "id[3]" for a for_each item
    step_id: str
    state: str
    seq: int = 0  # order of the last state change, for "newest first"
    attempt: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # plan, approval, changed, revert times


@dataclass
class Event:
    run_id: str
    seq: int
    at: str
    key: str
    kind: str
    from_state: str | None
    to_state: str | None
    detail: dict[str, Any]


class Store(Protocol):
    url: str

    def create_run(self, run: RunRow) -> None: ...
    def get_run(self, run_id: str) -> RunRow: ...
    def find_run(self, run_id: str) -> RunRow | None: ...
    def list_runs(self) -> list[RunRow]: ...
    def set_run_state(self, run_id: str, state: str, *, event: str,
                      detail: dict[str, Any] | None = None, **fields: Any) -> None: ...
    def update_run_meta(self, run_id: str, meta: dict[str, Any]) -> None: ...
    def steps(self, run_id: str) -> dict[str, StepRow]: ...
    def save_step(self, row: StepRow, *, event: str, from_state: str | None,
                  detail: dict[str, Any] | None = None) -> None: ...
    def add_event(self, run_id: str, key: str, kind: str, detail: dict[str, Any]) -> None: ...
    def events(self, run_id: str) -> list[Event]: ...
    def durations(self, step_id: str, kind: str = "apply") -> list[float]: ...
    def acquire_lock(self, name: str, holder: dict[str, Any],
                     steal_if: Callable[[dict[str, Any]], bool] | None = None) -> None: ...
    def release_lock(self, name: str, holder_run: str | None = None) -> None: ...
    def lock_holder(self, name: str) -> dict[str, Any] | None: ...
    def locks(self) -> dict[str, dict[str, Any]]: ...
    def close(self) -> None: ...


def process_holder(run_id: str) -> dict[str, Any]:
    return {"run": run_id, "pid": os.getpid(), "host": socket.gethostname(), "since": utcnow()}


def holder_alive(holder: dict[str, Any]) -> bool:
    """False only when we can tell: the holder ran on this host and its pid is gone."""
    if holder.get("host") != socket.gethostname() or "pid" not in holder:
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def loads(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise CorruptState(f"the state store holds unreadable data in {what}; "
                           "restore the state file from a backup") from None


def open_store(url: str | None, *, default_dir: str = ".runbook") -> Store:
    """``None``/path/``sqlite:///path`` → SQLite; ``postgresql://…`` → PostgreSQL;
    ``memory://`` → a throwaway in-memory store."""
    from runbook.store.sql import SqlStore

    if url and url.startswith(("postgresql://", "postgres://")):
        return SqlStore.postgres(url)
    if url == "memory://":
        return SqlStore.sqlite(":memory:")
    if url and url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    elif url:
        path = url
    else:
        path = os.path.join(default_dir, "state.db")
    return SqlStore.sqlite(path)
