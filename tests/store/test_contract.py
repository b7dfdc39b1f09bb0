"""One contract, every backend: memory, SQLite and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.errors import CorruptState, LockHeld, UnknownRun
from runbook.store.base import RunRow, StepRow, open_store, utcnow
from runbook.store.sql import SqlStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "memory":
        s = open_store("memory://")
    elif request.param == "sqlite":
        s = open_store(str(tmp_path / "state.db"))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        s = open_store(dsn)
    assert isinstance(s, SqlStore)
    yield s
    s.close()


def run_row(run_id: str = "r1") -> RunRow:
    return RunRow(run_id=run_id, runbook="t", path="t.yml", digest="d", text="runbook: t",
                  kind="run", state="created", created_at=utcnow(), meta={"a": [1, 2]})


def test_runs_round_trip(store: SqlStore) -> None:
    store.create_run(run_row())
    got = store.get_run("r1")
    assert (got.runbook, got.kind, got.state, got.meta) == ("t", "run", "created", {"a": [1, 2]})
    store.set_run_state("r1", "running", event="run_start", started_at="2026-01-01T00:00:00+00:00")
    assert store.get_run("r1").state == "running"
    assert store.get_run("r1").started_at == "2026-01-01T00:00:00+00:00"
    assert [r.run_id for r in store.list_runs()] == ["r1"]
    with pytest.raises(UnknownRun, match="no run 'nope'"):
        store.get_run("nope")


def test_step_state_outputs_and_event_are_written_together(store: SqlStore) -> None:
    store.create_run(run_row())
    row = StepRow(run_id="r1", key="a", step_id="a", state="running", attempt=1,
                  started_at=utcnow())
    store.save_step(row, event="start", from_state="pending")
    row.state, row.outputs, row.record = "succeeded", {"x": 1}, {"undo": ["y"]}
    store.save_step(row, event="succeed", from_state="running", detail={"n": 1})
    got = store.steps("r1")["a"]
    assert (got.state, got.outputs, got.record) == ("succeeded", {"x": 1}, {"undo": ["y"]})
    events = [(e.kind, e.from_state, e.to_state) for e in store.events("r1") if e.key == "a"]
    assert events == [("start", "pending", "running"), ("succeed", "running", "succeeded")]
    assert got.seq == max(e.seq for e in store.events("r1"))


def test_durations_come_from_stored_timestamps(store: SqlStore) -> None:
    store.create_run(run_row())
    row = StepRow(run_id="r1", key="a", step_id="a", state="succeeded",
                  started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:30+00:00",
                  info={"revert_seconds": 12.5})
    store.save_step(row, event="succeed", from_state="running")
    assert store.durations("a") == [90.0]
    assert store.durations("a", kind="revert") == [12.5]
    assert store.durations("b") == []


def test_locks_name_their_holder_and_can_be_broken(store: SqlStore) -> None:
    store.acquire_lock("run:r1", {"run": "r1", "pid": 1, "host": "h"})
    store.acquire_lock("run:r1", {"run": "r1", "pid": 1, "host": "h"})  # re-entrant
    with pytest.raises(LockHeld) as caught:
        store.acquire_lock("run:r1", {"run": "r1", "pid": 2, "host": "h"})
    assert caught.value.holder == {"run": "r1", "pid": 1, "host": "h"}
    store.acquire_lock("run:r1", {"run": "r1", "pid": 2, "host": "h"}, steal_if=lambda h: True)
    assert store.lock_holder("run:r1") == {"run": "r1", "pid": 2, "host": "h"}
    store.release_lock("run:r1", holder_run="other")
    assert store.lock_holder("run:r1") is not None
    store.release_lock("run:r1")
    assert store.lock_holder("run:r1") is None


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    s = open_store(path)
    s.create_run(run_row())
    s.close()
    again = open_store(path)
    assert again.get_run("r1").meta == {"a": [1, 2]}


def test_sqlite_is_wal_with_full_sync(tmp_path: Path) -> None:
    s = open_store(str(tmp_path / "state.db"))
    assert isinstance(s, SqlStore)
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_corrupt_state_file_is_reported_not_used(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptState, match="is not a usable SQLite database"):
        open_store(str(path))


def test_unreadable_json_in_the_store_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = open_store(str(path))
    s.create_run(run_row())
    s.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET meta = '{broken'")
    conn.commit()
    conn.close()
    with pytest.raises(CorruptState, match="unreadable data in run r1"):
        open_store(str(path)).get_run("r1")


def test_postgres_url_password_is_masked() -> None:
    from runbook.errors import StoreError

    dsn = "postgresql://user:hunter2@127.0.0.1:1/db"  # nothing listens on port 1

    with pytest.raises(StoreError) as caught:
        open_store(dsn)
    assert "hunter2" not in str(caught.value)
    assert "cannot reach the PostgreSQL state store" in str(caught.value)
