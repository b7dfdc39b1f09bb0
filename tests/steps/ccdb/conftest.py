"""Fixtures for the ccdb steps: Ruby's OpenSSL as an independent Cloud Controller
encryptor, and a seeded Cloud Controller database in a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_binary

RUBY_ENCRYPTOR = Path(__file__).with_name("encryptor.rb")

# Test-only keys.
KEYS = {"db_encryption_key": "legacy-key", "k1": "key-one", "k2": "key-two ✓"}
OLD, NEW = "10.0.0.5", "10.1.0.5"
HOSTS = {OLD: NEW, "db.old.example": "db.new.example"}

RubyCall = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def ruby() -> RubyCall:
    """Runs requests through tests/steps/ccdb/encryptor.rb (Ruby's OpenSSL)."""
    binary = require_binary("ruby")

    def call(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        text = "".join(json.dumps(r) + "\n" for r in requests)
        done = subprocess.run([binary, str(RUBY_ENCRYPTOR)], input=text, capture_output=True,
                              text=True, check=True, timeout=120)
        return [json.loads(line) for line in done.stdout.splitlines()]

    return call


def targets(dsn_env: str = "CCDB_DSN") -> dict[str, Any]:
    return {"source": {"ccdb": {
        "dsn": f"${{env:{dsn_env}}}", "db_encryption_key": "${env:CC_KEY}",
        "database_encryption": {"keys": {"k1": "${env:K1}", "k2": "${env:K2}"},
                                "current_key_label": "k1"}}}}


def environ(dsn: str, **overrides: str) -> dict[str, str]:
    env = {"CCDB_DSN": dsn, "CC_KEY": KEYS["db_encryption_key"], "K1": KEYS["k1"],
           "K2": KEYS["k2"]}
    env.update(overrides)
    return env
