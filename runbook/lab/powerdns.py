"""The BOSH PowerDNS database and a real PowerDNS server over it, on loopback.

The schema is the one the BOSH director created for its PowerDNS (migration
``db/migrations/dns/20120123234908_initial.rb`` of cloudfoundry/bosh, as migrated on
PostgreSQL: ``domains``/``records`` plus the ``dns_schema`` bookkeeping table). Rows are
seeded the way the director wrote them (``dns_helper.rb``): a NATIVE domain, an SOA with
content ``localhost hostmaster@localhost 0 10800 604800 30``, an NS ``ns.<domain>``, an
A record for ``ns.<domain>`` and A records for instances.

PowerDNS 4 (Debian's ``pdns-server`` + ``pdns-backend-pgsql``) reads columns and tables
that the PowerDNS 3 of the BOSH era did not have; :func:`add_pdns4_columns` adds them with
defaults, so rows written in the BOSH shape (which is what the ``dns`` steps write) are
served unchanged.

    with Postgres() as pg:
        dsn = pg.create_database("bosh")
        create_schema(dsn)
        seed_domain(dsn, "microbosh", ns_address="10.0.0.2",
                    addresses={"0.api.default.cf": "10.0.0.5"}, wildcard="10.0.0.20")
        with PowerDns(dsn) as pdns:        # raises ServerUnavailable without the packages
            ...  # query 127.0.0.1:pdns.port
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from runbook.lab.servers import ServerUnavailable, find_binary, free_port, stop_process

BOSH_SCHEMA = """
CREATE TABLE IF NOT EXISTS dns_schema (filename text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS domains (
    id serial PRIMARY KEY,
    name varchar(255) NOT NULL UNIQUE,
    master varchar(128) DEFAULT NULL,
    last_check integer DEFAULT NULL,
    type varchar(6) NOT NULL,
    notified_serial integer DEFAULT NULL,
    account varchar(40) DEFAULT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id serial PRIMARY KEY,
    name varchar(255) DEFAULT NULL,
    type varchar(10) DEFAULT NULL,
    content varchar(4098) DEFAULT NULL,
    ttl integer DEFAULT NULL,
    prio integer DEFAULT NULL,
    change_date integer DEFAULT NULL,
    domain_id integer DEFAULT NULL REFERENCES domains(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS records_name_index ON records (name);
CREATE INDEX IF NOT EXISTS records_domain_id_index ON records (domain_id);
CREATE INDEX IF NOT EXISTS records_name_type_index ON records (name, type);
INSERT INTO dns_schema (filename) VALUES ('20120123234908_initial.rb') ON CONFLICT DO NOTHING;
"""

# What PowerDNS 4.7's generic PostgreSQL backend selects beyond the BOSH columns
# (per the pdns-backend-pgsql schema shipped by Debian). Defaults keep BOSH-shaped rows
# valid: enabled, authoritative, no DNSSEC ordering.
PDNS4_COLUMNS = """
ALTER TABLE domains ADD COLUMN IF NOT EXISTS options text DEFAULT NULL;
ALTER TABLE domains ADD COLUMN IF NOT EXISTS catalog text DEFAULT NULL;
ALTER TABLE records ADD COLUMN IF NOT EXISTS disabled boolean DEFAULT false;
ALTER TABLE records ADD COLUMN IF NOT EXISTS ordername varchar(255);
ALTER TABLE records ADD COLUMN IF NOT EXISTS auth boolean DEFAULT true;
CREATE TABLE IF NOT EXISTS supermasters (ip inet NOT NULL, nameserver varchar(255) NOT NULL,
    account varchar(40) NOT NULL, PRIMARY KEY (ip, nameserver));
CREATE TABLE IF NOT EXISTS comments (id serial PRIMARY KEY, domain_id integer NOT NULL,
    name varchar(255) NOT NULL, type varchar(10) NOT NULL, modified_at integer NOT NULL,
    account varchar(40) DEFAULT NULL, comment text NOT NULL);
CREATE TABLE IF NOT EXISTS domainmetadata (id serial PRIMARY KEY,
    domain_id integer REFERENCES domains(id) ON DELETE CASCADE, kind varchar(32), content text);
CREATE TABLE IF NOT EXISTS cryptokeys (id serial PRIMARY KEY,
    domain_id integer REFERENCES domains(id) ON DELETE CASCADE, flags integer NOT NULL,
    active boolean, published boolean DEFAULT true, content text);
CREATE TABLE IF NOT EXISTS tsigkeys (id serial PRIMARY KEY, name varchar(255),
    algorithm varchar(50), secret varchar(255));
"""

#: the SOA content the director wrote (six fields: PowerDNS 3 defaulted the minimum TTL)
BOSH_SOA_CONTENT = "localhost hostmaster@localhost 0 10800 604800 30"
#: the same with the seventh field, which PowerDNS 4 requires ("Out of range" otherwise)
SOA_CONTENT = "localhost hostmaster@localhost 0 10800 604800 30 30"


def _connect(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


def create_schema(dsn: str, *, pdns4: bool = True) -> None:
    """Create the BOSH PowerDNS tables (and, with ``pdns4``, what PowerDNS 4 also reads)."""
    with _connect(dsn) as conn:
        conn.execute(BOSH_SCHEMA)
        if pdns4:
            conn.execute(PDNS4_COLUMNS)


def add_pdns4_columns(dsn: str) -> None:
    with _connect(dsn) as conn:
        conn.execute(PDNS4_COLUMNS)


def seed_domain(dsn: str, domain: str, *, ns_address: str,
                addresses: dict[str, str] | None = None, wildcard: str | None = None,
                ttl: int = 300, soa: str = SOA_CONTENT) -> int:
    """Insert a NATIVE domain as the director did; return its id.

    ``addresses`` maps names relative to ``domain`` to IPv4 addresses; ``wildcard`` adds
    ``*.<domain>`` pointing at that address (what an operator adds for app routes).
    ``soa`` defaults to a PowerDNS 4 compatible form; pass :data:`BOSH_SOA_CONTENT` for
    the director's exact bytes when no PowerDNS 4 will read the rows.
    """
    now = int(time.time())
    with _connect(dsn) as conn:
        row = conn.execute("INSERT INTO domains (name, type) VALUES (%s, 'NATIVE') RETURNING id",
                           (domain,)).fetchone()
        domain_id = int(row[0])
        rows: list[tuple[str, str, str, int, int | None]] = [
            (domain, "SOA", soa, 300, now),
            (domain, "NS", f"ns.{domain}", 14400, None),
            (f"ns.{domain}", "A", ns_address, 14400, None),
        ]
        for relative, address in (addresses or {}).items():
            rows.append((f"{relative}.{domain}", "A", address, ttl, now))
        if wildcard is not None:
            rows.append((f"*.{domain}", "A", wildcard, ttl, now))
        for name, rtype, content, rttl, changed in rows:
            conn.execute("INSERT INTO records (domain_id, name, type, content, ttl, change_date)"
                         " VALUES (%s, %s, %s, %s, %s, %s)",
                         (domain_id, name, rtype, content, rttl, changed))
    return domain_id


def allow_tsig(dsn: str, domain: str, *, key_name: str, algorithm: str, secret: str) -> None:
    """Let the TSIG key send RFC 2136 updates to ``domain`` and transfer it (PowerDNS 4)."""
    with _connect(dsn) as conn:
        conn.execute("INSERT INTO tsigkeys (name, algorithm, secret) SELECT %s, %s, %s WHERE "
                     "NOT EXISTS (SELECT 1 FROM tsigkeys WHERE name = %s AND algorithm = %s)",
                     (key_name, algorithm, secret, key_name, algorithm))
        for kind in ("TSIG-ALLOW-DNSUPDATE", "TSIG-ALLOW-AXFR"):
            conn.execute("INSERT INTO domainmetadata (domain_id, kind, content) "
                         "SELECT id, %s, %s FROM domains WHERE name = %s",
                         (kind, key_name, domain))


def table_rows(dsn: str) -> list[tuple[Any, ...]]:
    """Every domain and record in a stable order, to compare a database before and after."""
    with _connect(dsn) as conn:
        domains = conn.execute("SELECT 'domain', id, name, type FROM domains ORDER BY id")
        rows = [tuple(r) for r in domains.fetchall()]
        records = conn.execute("SELECT 'record', id, domain_id, name, type, content, ttl, prio "
                               "FROM records ORDER BY id")
        rows += [tuple(r) for r in records.fetchall()]
    return rows


class PowerDns:
    """``pdns_server`` with the gpgsql backend over ``dsn``, on a free loopback port.

    Runs in the foreground of its own config directory (never the system service) with
    every cache off, so a row written to the database is answered at once. ``dnsupdate``
    turns on RFC 2136 updates from loopback (keys: :func:`allow_tsig`).
    """

    def __init__(self, dsn: str, *, port: int | None = None, dnsupdate: bool = False) -> None:
        self.dsn = dsn
        self.port = port or free_port()
        self.address = "127.0.0.1"
        self.dnsupdate = dnsupdate
        self.dir = Path(tempfile.mkdtemp(prefix="runbook-pdns-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str:
        found = find_binary("pdns_server", ["/usr/sbin"])
        if found is None:
            raise ServerUnavailable("PowerDNS: install Debian's pdns-server and "
                                    "pdns-backend-pgsql packages")
        if not list(Path("/usr/lib").glob("*/pdns/libgpgsqlbackend.so")) and \
                not list(Path("/usr/lib/pdns").glob("libgpgsqlbackend.so")):
            raise ServerUnavailable("PowerDNS: the gpgsql backend is missing; install Debian's "
                                    "pdns-backend-pgsql package")
        return found

    def config(self) -> str:
        url = urlsplit(self.dsn)
        lines = {
            "launch": "gpgsql",
            "gpgsql-host": url.hostname or "127.0.0.1",
            "gpgsql-port": str(url.port or 5432),
            "gpgsql-dbname": url.path.lstrip("/") or "postgres",
            "gpgsql-user": unquote(url.username or "postgres"),
            "gpgsql-password": unquote(url.password or ""),
            "local-address": self.address,
            "local-port": str(self.port),
            "socket-dir": str(self.dir),
            "daemon": "no",
            "guardian": "no",
            "write-pid": "no",
            "disable-syslog": "yes",
            "loglevel": "4",
            # Caches off: tests and rehearsals must see a database change immediately.
            "cache-ttl": "0",
            "negquery-cache-ttl": "0",
            "query-cache-ttl": "0",
            "zone-cache-refresh-interval": "0",
            "distributor-threads": "1",
            "receiver-threads": "1",
            "allow-axfr-ips": "127.0.0.0/8",
            "security-poll-suffix": "",  # no status lookups on the internet
        }
        if self.dnsupdate:
            lines.update({"dnsupdate": "yes", "allow-dnsupdate-from": "127.0.0.0/8"})
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def __enter__(self) -> Self:
        binary = self.binary()
        (self.dir / "pdns.conf").write_text(self.config())
        log = (self.dir / "pdns.log").open("wb")
        self.proc = subprocess.Popen([binary, f"--config-dir={self.dir}"], stdout=log,
                                     stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, timeout: float = 20.0) -> None:
        import dns.exception
        import dns.message
        import dns.query

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"pdns_server exited {self.proc.returncode}: {self.log()}")
            try:
                dns.query.udp(dns.message.make_query(".", "SOA"), self.address,
                              port=self.port, timeout=0.3)
                return
            except (dns.exception.DNSException, OSError):  # not answering yet
                time.sleep(0.1)
        raise TimeoutError(f"pdns_server did not answer on port {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.dir / "pdns.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
