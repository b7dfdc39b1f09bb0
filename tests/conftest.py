"""Shared fixtures: real servers started on loopback for the duration of the tests.

A test that needs a server binary that is missing FAILS when CI=true and is skipped
(with the reason printed) otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from runbook.lab.servers import Nats, Postgres, ServerUnavailable

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Fail in CI, skip loudly elsewhere."""
    message = f"real component unavailable: {what}"
    if IN_CI:
        pytest.fail(message + " (CI must install it: see .ci/run)")
    pytest.skip(message)


def require_binary(name: str, *extra_dirs: str) -> str:
    for d in extra_dirs:
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    path = shutil.which(name)
    if path is None:
        missing(f"'{name}' is not installed")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    try:
        with Postgres() as pg:
            yield pg
    except ServerUnavailable as exc:
        missing(str(exc))


@pytest.fixture
def postgres_dsn(postgres_server: Postgres, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    name = f"{name}_{os.getpid()}_{id(request) % 100000}"
    return postgres_server.create_database(name)


@pytest.fixture
def nats_server() -> Iterator[Nats]:
    try:
        with Nats() as server:
            yield server
    except ServerUnavailable as exc:
        missing(str(exc))
