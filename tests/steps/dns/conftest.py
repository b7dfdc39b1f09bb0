"""Fixtures for the dns steps: the BOSH PowerDNS schema in a real PostgreSQL, a real
PowerDNS over it, and a real BIND 9 accepting TSIG-signed RFC 2136 updates."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.lab.powerdns import PowerDns, create_schema, seed_domain
from runbook.lab.servers import ServerUnavailable, free_port
from tests.conftest import missing, require_binary
from typing import Self

# Test-only TSIG secrets (base64), not used anywhere else.
WRITER_SECRET = "d3JpdGVyLWtleS1mb3ItdGhlLWRucy10ZXN0cy0xMjM0NTY="
READER_SECRET = "cmVhZGVyLWtleS1mb3ItdGhlLWRucy10ZXN0cy0xMjM0NTY="

OLD_ZONE = """$TTL 300
@    IN SOA ns.old.example. hostmaster.old.example. 1 3600 600 86400 30
@    IN NS  ns.old.example.
ns   IN A   10.0.0.2
api  IN A   10.0.0.5
uaa  IN A   10.0.0.6
*    IN A   10.0.0.20
"""

NEW_ZONE = """$TTL 300
@    IN SOA ns.new.example. hostmaster.new.example. 1 3600 600 86400 30
@    IN NS  ns.new.example.
ns   IN A   10.1.0.2
"""


@pytest.fixture
def pdns_dsn(postgres_dsn: str) -> str:
    """A database holding the BOSH PowerDNS schema with the director's zone ``microbosh``."""
    create_schema(postgres_dsn)
    seed_domain(postgres_dsn, "microbosh", ns_address="10.0.0.2",
                addresses={"0.api.default.cf": "10.0.0.5", "0.uaa.default.cf": "10.0.0.6"},
                wildcard="10.0.0.20")
    return postgres_dsn


@pytest.fixture
def powerdns(pdns_dsn: str) -> Iterator[PowerDns]:
    try:
        PowerDns.binary()
    except ServerUnavailable as exc:
        missing(str(exc))
    with PowerDns(pdns_dsn) as server:
        yield server


class Bind:
    """``named`` in the foreground with its own config directory on a free loopback port.

    Key ``writer`` may update and transfer both zones; key ``reader`` may only transfer.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        keys = "".join(f'key "{n}" {{ algorithm hmac-sha256; secret "{s}"; }};\n'
                       for n, s in (("writer", WRITER_SECRET), ("reader", READER_SECRET)))
        zones = "".join(
            f'zone "{z}" {{ type primary; file "{self.dir}/{z}.zone"; '
            f'update-policy {{ grant writer zonesub ANY; }}; '
            f'allow-transfer {{ key writer; key reader; }}; }};\n'
            for z in ("old.example", "new.example"))
        return (keys + "options {\n"
                f'  directory "{self.dir}";\n'
                f"  listen-on port {self.port} {{ 127.0.0.1; }};\n"
                "  listen-on-v6 { none; };\n  recursion no;\n  pid-file none;\n"
                f'  session-keyfile "{self.dir}/session.key";\n'
                "  notify no;\n};\ncontrols { };\n" + zones)

    def __enter__(self) -> Self:
        binary = require_binary("named", "/usr/sbin")
        (self.dir / "old.example.zone").write_text(OLD_ZONE)
        (self.dir / "new.example.zone").write_text(NEW_ZONE)
        (self.dir / "named.conf").write_text(self.config())
        log = (self.dir / "named.log").open("wb")
        self.proc = subprocess.Popen([binary, "-g", "-n", "1", "-c",
                                      str(self.dir / "named.conf")],
                                     stdout=log, stderr=subprocess.STDOUT)
        import dns.message
        import dns.query

        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("named exited: " + (self.dir / "named.log").read_text())
            try:
                dns.query.udp(dns.message.make_query("old.example", "SOA"), "127.0.0.1",
                              port=self.port, timeout=0.3)
                return self
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    directory = tmp_path / "bind"
    directory.mkdir()
    with Bind(directory) as server:
        yield server
    shutil.rmtree(directory, ignore_errors=True)
