"""A Cloud Controller database for tests, benchmarks and the lab.

Creates the subset of the CCDB schema this project touches, as Cloud Controller's
migrations leave it at the end of 2014 (``era="2014"``) or today (``era="current"``)
(DDL from ``cloud_controller_ng``'s Sequel migrations, trimmed to the relevant tables),
and fills it with apps, service instances, bindings, service keys, brokers and
environment variable groups whose credentials and URLs point at the given old hosts.
Encrypted columns are written the way Cloud Controller writes them: AES-128-CBC,
8-character salts with OpenSSL's EVP_BytesToKey (2014 and rows that survived since),
16-character salts with PBKDF2-HMAC-SHA256, strict Base64 (MIME Base64 for rows from
before 2014-03-25 with ``mime=True``), JSON as Oj's rails mode prints it.

    from runbook.lab.ccdb_seed import SeedKeys, seed
    counts = seed(dsn, era="current", apps=100, hosts=["10.0.0.5", "db.old.example"],
                  keys=SeedKeys(db_encryption_key="k0", keys={"k1": "s3cret"}, labels=("k1",)))
"""

from __future__ import annotations

import json
import multiprocessing
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from steps.ccdb import crypto

Era = Literal["2014", "current"]
Kdf = Literal["pbkdf2", "legacy", "mixed"]

# cloud_controller_ng migrations run to HEAD (2026-08), pg_dump -s, trimmed.
DDL_CURRENT = """
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE service_brokers (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name text NOT NULL, broker_url text NOT NULL,
    auth_password text NOT NULL, salt text, auth_username text, space_id integer,
    encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL,
    state character varying(255) DEFAULT ''::character varying NOT NULL
);
CREATE UNIQUE INDEX sbrokers_guid_index ON service_brokers (guid);
CREATE TABLE service_broker_update_requests (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name character varying(255),
    broker_url character varying(255), authentication character varying(16000),
    salt character varying(255), encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL, service_broker_id integer NOT NULL,
    fk_service_brokers_id integer
);
CREATE UNIQUE INDEX service_broker_update_requests_guid_index
    ON service_broker_update_requests (guid);
CREATE TABLE service_instances (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name text NOT NULL, credentials text,
    gateway_name text, gateway_data character varying(2048), space_id integer NOT NULL,
    service_plan_id integer, salt text, dashboard_url character varying(16000),
    is_gateway_service boolean DEFAULT true NOT NULL, syslog_drain_url text, tags text,
    route_service_url text, encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL, maintenance_info text,
    broker_provided_metadata text
);
CREATE UNIQUE INDEX si_guid_index ON service_instances (guid);
CREATE TABLE service_bindings (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, credentials text NOT NULL, salt text,
    syslog_drain_url text, volume_mounts text, volume_mounts_salt text, app_guid text NOT NULL,
    service_instance_guid text NOT NULL, type text, name character varying(255),
    encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX sb_guid_index ON service_bindings (guid);
CREATE TABLE service_keys (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name text NOT NULL, salt text,
    credentials text NOT NULL, service_instance_id integer NOT NULL,
    encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX sk_guid_index ON service_keys (guid);
CREATE TABLE route_bindings (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, route_id integer, service_instance_id integer,
    route_service_url text
);
CREATE UNIQUE INDEX route_bindings_guid_index ON route_bindings (guid);
CREATE TABLE apps (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, space_guid text, name citext, droplet_guid text,
    desired_state text DEFAULT 'STOPPED'::text, encrypted_environment_variables text, salt text,
    max_task_sequence_id integer DEFAULT 1, buildpack_cache_sha256_checksum text,
    enable_ssh boolean, encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL, revisions_enabled boolean DEFAULT true,
    file_based_service_bindings_enabled boolean DEFAULT false NOT NULL,
    service_binding_k8s_enabled boolean DEFAULT false NOT NULL,
    file_based_vcap_services_enabled boolean DEFAULT false NOT NULL,
    lifecycle_type character varying(255),
    CONSTRAINT only_one_sb_feature_enabled
        CHECK ((NOT (service_binding_k8s_enabled AND file_based_vcap_services_enabled)))
);
CREATE UNIQUE INDEX apps_v3_guid_index ON apps (guid);
CREATE TABLE processes (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, instances integer DEFAULT 1,
    state text DEFAULT 'STOPPED'::text NOT NULL, app_guid text, type text DEFAULT 'web'::text,
    encrypted_docker_credentials_json text, docker_salt text
);
CREATE UNIQUE INDEX apps_guid_index ON processes (guid);
CREATE TABLE env_groups (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name text NOT NULL, environment_json text,
    salt text, encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX evg_guid_index ON env_groups (guid);
CREATE TABLE encryption_key_sentinels (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, expected_value character varying(255),
    encrypted_value character varying(255), encryption_key_label character varying(255),
    salt character varying(255), encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX encryption_key_sentinels_guid_index ON encryption_key_sentinels (guid);
CREATE TABLE buildpack_lifecycle_data (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, app_guid text, droplet_guid text, stack text,
    encrypted_buildpack_url text, encrypted_buildpack_url_salt text, admin_buildpack_name text,
    build_guid text, encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX buildpack_lifecycle_data_guid_index ON buildpack_lifecycle_data (guid);
CREATE TABLE packages (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, type text, state text NOT NULL, app_guid text,
    docker_image text, docker_username text, docker_password_salt text,
    encrypted_docker_password character varying(16000),
    encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX packages_guid_index ON packages (guid);
CREATE TABLE droplets (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, state text NOT NULL, docker_receipt_image text,
    app_guid text, docker_receipt_username text, docker_receipt_password_salt text,
    encrypted_docker_receipt_password character varying(16000),
    encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX droplets_guid_index ON droplets (guid);
CREATE TABLE tasks (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name citext NOT NULL, command text NOT NULL,
    state text NOT NULL, encrypted_environment_variables text, salt text,
    app_guid text NOT NULL, droplet_guid text NOT NULL,
    encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL
);
CREATE UNIQUE INDEX tasks_guid_index ON tasks (guid);
CREATE TABLE revisions (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, app_guid character varying(255),
    version integer DEFAULT 1, droplet_guid character varying(255),
    encrypted_environment_variables text, salt character varying(255),
    encryption_key_label character varying(255),
    encryption_iterations integer DEFAULT 2048 NOT NULL,
    description text DEFAULT 'N/A'::text NOT NULL
);
CREATE UNIQUE INDEX revisions_guid_index ON revisions (guid);
CREATE TABLE security_groups (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name text NOT NULL, rules text,
    staging_default boolean DEFAULT false, running_default boolean DEFAULT false
);
CREATE TABLE domains (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name citext NOT NULL,
    wildcard boolean DEFAULT true NOT NULL, owning_organization_id integer,
    router_group_guid text, internal boolean DEFAULT false
);
CREATE UNIQUE INDEX domains_guid_index ON domains (guid);
CREATE TABLE routes (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, host citext DEFAULT ''::citext NOT NULL,
    domain_id integer NOT NULL, space_id integer NOT NULL,
    path citext DEFAULT ''::character varying NOT NULL, port integer DEFAULT 0 NOT NULL
);
CREATE UNIQUE INDEX routes_guid_index ON routes (guid);
"""

# The same, migrations up to 2014-12-31 (v2 `apps` became `processes` in 2016).
DDL_2014 = """
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE service_auth_tokens (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, label citext NOT NULL, provider citext NOT NULL,
    token text NOT NULL, salt text
);
CREATE TABLE service_brokers (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name text NOT NULL, broker_url text NOT NULL,
    auth_password text NOT NULL, salt text, auth_username text
);
CREATE TABLE service_instances (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name character varying(50) NOT NULL,
    credentials text, gateway_name text, gateway_data character varying(2048),
    space_id integer NOT NULL, service_plan_id integer, salt text, dashboard_url text,
    is_gateway_service boolean DEFAULT true NOT NULL, syslog_drain_url text
);
CREATE TABLE service_bindings (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, credentials text NOT NULL, binding_options text,
    gateway_name text DEFAULT ''::text NOT NULL, configuration text, gateway_data text,
    app_id integer NOT NULL, service_instance_id integer NOT NULL, salt text,
    syslog_drain_url text
);
CREATE TABLE apps (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name citext NOT NULL, instances integer DEFAULT 1,
    state text DEFAULT 'STOPPED'::text NOT NULL, space_id integer NOT NULL,
    stack_id integer NOT NULL, salt text, encrypted_environment_json text,
    diego boolean DEFAULT false, docker_image text
);
CREATE TABLE env_groups (
    id serial PRIMARY KEY, guid text NOT NULL,
    created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp without time zone, name text NOT NULL, environment_json text, salt text
);
"""

_OJ_HTML = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e"}


@dataclass(frozen=True)
class SeedKeys:
    """Cloud Controller's key settings; ``labels`` are given to rows in turn (None: the
    row has no label and CC falls back to ``db_encryption_key``)."""

    db_encryption_key: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    labels: tuple[str | None, ...] = (None,)

    def key_for(self, label: str | None) -> str:
        return self.keys.get(label, self.db_encryption_key) if label else self.db_encryption_key


def oj_dump(value: Any) -> str:
    """JSON as Cloud Controller's Oj (rails mode) writes it: compact, non-ASCII raw,
    ``&``, ``<`` and ``>`` escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _OJ_HTML.items():
        text = text.replace(char, escape)
    return text


def mime_base64(strict: str) -> str:
    """Ruby's ``Base64.encode64`` layout: 60 characters a line, each line ending in \\n."""
    return "".join(strict[i:i + 60] + "\n" for i in range(0, len(strict), 60))


def encrypt_values(password: str, salt: str, iterations: int, plaintexts: Sequence[str | None],
                   mime: bool = False) -> list[str | None]:
    """Encrypt a row's values with one derivation, as CC would store them."""
    key, iv = crypto.derive(password, salt, iterations)
    out: list[str | None] = []
    for text in plaintexts:
        if text is None:
            out.append(None)
            continue
        value = crypto.encrypt_with(text.encode("utf-8"), key, iv)
        out.append(mime_base64(value) if mime else value)
    return out


def _encrypt_job(job: tuple[str, str, int, list[str | None], bool]) -> list[str | None]:
    return encrypt_values(*job)


def create_schema(conn: Any, era: Era) -> None:
    conn.execute(DDL_CURRENT if era == "current" else DDL_2014)
    conn.commit()


@dataclass
class _Table:
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    #: (salt column, [value columns], row index) waiting for encryption
    pending: list[tuple[int, list[int], str | None]] = field(default_factory=list)


class _Builder:
    def __init__(self, era: Era, keys: SeedKeys, kdf: Kdf, iterations: int, rng: random.Random):
        self.era, self.keys, self.kdf, self.iterations, self.rng = era, keys, kdf, iterations, rng
        self.tables: dict[str, _Table] = {}
        self.jobs: list[tuple[str, str, int, list[str | None], bool]] = []
        self.targets: list[tuple[str, int, list[str]]] = []
        self.count = 0

    def salt(self) -> str:
        self.count += 1
        legacy = self.kdf == "legacy" or (self.kdf == "mixed" and self.count % 2 == 0)
        return f"{self.rng.getrandbits(32 if legacy else 64):0{8 if legacy else 16}x}"

    def add(self, table: str, values: dict[str, Any],
            encrypted: dict[str, tuple[str, str | None]] | None = None, mime: bool = False) -> None:
        """``encrypted``: value column -> (salt column, plaintext); one label per row."""
        row = dict(values)
        current = self.era == "current"
        label = self.keys.labels[len(self.tables.get(table, _Table([])).rows)
                                 % len(self.keys.labels)] if current else None
        if current and table != "processes":
            row["encryption_key_label"] = label
            row["encryption_iterations"] = self.iterations
        by_salt: dict[str, list[str]] = {}
        for column, (salt_column, plain) in (encrypted or {}).items():
            row[salt_column] = None
            row[column] = None
            if plain is not None:  # CC stores blank values as NULL, without a salt
                by_salt.setdefault(salt_column, []).append(column)
        spec = self.tables.setdefault(table, _Table(list(row)))
        index = len(spec.rows)
        spec.rows.append([row[c] for c in spec.columns])
        for salt_column, columns in by_salt.items():
            salt = self.salt()
            spec.rows[index][spec.columns.index(salt_column)] = salt
            plains = [(encrypted or {})[c][1] for c in columns]
            self.jobs.append((self.keys.key_for(label), salt, self.iterations, plains, mime))
            self.targets.append((table, index, columns))

    def encrypt(self, workers: int) -> None:
        if workers > 1 and len(self.jobs) > 1000:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                results = pool.map(_encrypt_job, self.jobs, chunksize=500)
        else:
            results = [_encrypt_job(job) for job in self.jobs]
        for (table, index, columns), values in zip(self.targets, results, strict=True):
            spec = self.tables[table]
            for column, value in zip(columns, values, strict=True):
                spec.rows[index][spec.columns.index(column)] = value

    def write(self, conn: Any) -> dict[str, int]:
        for name, spec in self.tables.items():
            cols = ", ".join(spec.columns)
            with conn.cursor().copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
                for row in spec.rows:
                    copy.write_row(row)
        conn.commit()
        return {name: len(spec.rows) for name, spec in self.tables.items()}


def seed(dsn: str, *, era: Era = "current", apps: int = 10,
         hosts: Sequence[str] = ("10.0.0.5",), keys: SeedKeys = SeedKeys(),
         kdf: Kdf = "pbkdf2", iterations: int = 2048, mime: bool = False,
         workers: int = 1, seed_value: int = 0, create: bool = True,
         tables: Iterable[str] | None = None,
         asg_networks: Sequence[str] = ()) -> dict[str, int]:
    """Create (``create=True``) and fill a CCDB; returns rows written per table.

    Each app gets an app row, a service instance, a binding and (current era) a service
    key, all pointing at ``hosts[i % len(hosts)]``; every 10th binding has an NFS volume
    mount; every 50th app a broker; two environment variable groups. ``tables`` limits
    which tables are filled (the schema is always complete). ``asg_networks`` adds an
    application security group per network (egress to it, to the first host, and Cloud
    Foundry's usual public-networks ranges).
    """
    import psycopg

    if era == "2014" and kdf != "legacy":
        raise ValueError("2014-era Cloud Controllers only wrote 8-character salts (kdf='legacy')")
    only = set(tables) if tables is not None else None
    b = _Builder(era, keys, kdf, iterations, random.Random(seed_value))
    current = era == "current"

    def want(table: str) -> bool:
        return only is None or table in only

    for i in range(apps):
        host = hosts[i % len(hosts)]
        app_env = oj_dump({"API_URL": f"http://{host}:8080/api?x=1&y=2", "APP": f"app-{i}",
                           "GRÜẞE": "naïve – ünïcode ✓", "BACKUP": f"{host}:22"})
        creds = {"uri": f"postgres://user{i}:pw{i}@{host}:5432/db{i}", "hostname": host,
                 "port": 5432, "username": f"user{i}", "password": f"p@ss&<{i}>",
                 "hosts": [host], "nested": {"url": f"https://{host}/v1", "ok": True}}
        guid = f"{i:08d}-0000-4000-8000-000000000000"
        if want("apps"):
            if current:
                b.add("apps", {"guid": guid, "name": f"app-{i}", "space_guid": "space"},
                      {"encrypted_environment_variables": ("salt", app_env)}, mime)
            else:
                b.add("apps", {"guid": guid, "name": f"app-{i}", "space_id": 1, "stack_id": 1},
                      {"encrypted_environment_json": ("salt", app_env)}, mime)
        if want("service_instances"):
            b.add("service_instances",
                  {"guid": f"si-{guid}", "name": f"svc-{i}", "space_id": 1,
                   "dashboard_url": f"https://{host}/dashboard/{i}",
                   "syslog_drain_url": f"syslog://{host}:514" if i % 3 == 0 else None},
                  {"credentials": ("salt", oj_dump(creds))}, mime)
        if want("service_bindings"):
            binding: dict[str, Any] = {"guid": f"sb-{guid}"}
            binding.update({"app_guid": guid, "service_instance_guid": f"si-{guid}"} if current
                           else {"app_id": i + 1, "service_instance_id": i + 1})
            enc: dict[str, tuple[str, str | None]] = {"credentials": ("salt", oj_dump(creds))}
            if current:
                enc["volume_mounts"] = ("volume_mounts_salt", None)
            if current and i % 10 == 0:
                mount = [{"driver": "nfsv3driver", "container_dir": f"/var/vcap/data/{i}",
                          "mode": "rw", "device_type": "shared",
                          "device": {"volume_id": f"vol-{i}",
                                     "mount_config": {"source": f"nfs://{host}/export/{i}"}}}]
                enc["volume_mounts"] = ("volume_mounts_salt", oj_dump(mount))
            b.add("service_bindings", binding, enc, mime)
        if current and want("service_keys"):
            b.add("service_keys", {"guid": f"sk-{guid}", "name": f"key-{i}",
                                   "service_instance_id": i + 1},
                  {"credentials": ("salt", oj_dump(creds))})
        if i % 50 == 0 and want("service_brokers"):
            b.add("service_brokers", {"guid": f"br-{guid}", "name": f"broker-{i}",
                                      "broker_url": f"http://{host}:9000",
                                      "auth_username": "admin"},
                  {"auth_password": ("salt", f"broker-secret-{i}")}, mime)
    if want("env_groups"):
        for name in ("running", "staging"):
            b.add("env_groups", {"guid": f"eg-{name}", "name": name},
                  {"environment_json": ("salt", oj_dump({"HTTP_PROXY": f"http://{hosts[0]}:3128",
                                                         "GROUP": name}))}, mime)
    b.encrypt(workers)
    with psycopg.connect(dsn) as conn:
        if create:
            create_schema(conn, era)
        counts = b.write(conn)
        if asg_networks and want("security_groups"):
            for i, network in enumerate(asg_networks):
                rules = [{"protocol": "tcp", "destination": network, "ports": "5432,3306"},
                         {"protocol": "tcp", "destination": hosts[0], "ports": "2049"},
                         {"protocol": "all", "destination": "0.0.0.0-9.255.255.255"},
                         {"protocol": "all", "destination": "11.0.0.0-169.253.255.255"}]
                conn.execute("INSERT INTO security_groups (guid, name, rules, running_default) "
                             "VALUES (%s, %s, %s, true)",
                             (f"asg-{i}", f"services-{i}", oj_dump(rules)))
            counts["security_groups"] = len(asg_networks)
        return counts


class CcdbLab:
    """A seeded Cloud Controller database on a loopback PostgreSQL, for the lab.

        with CcdbLab(apps=200, hosts=["10.0.0.5"]) as lab:
            lab.profile()   # a ``ccdb`` target profile with ${env:...} references
            lab.environ()   # the values those references resolve to

    Pass ``server`` (a started :class:`runbook.lab.servers.Postgres`) to share one server.
    """

    def __init__(self, *, era: Era = "current", apps: int = 100,
                 hosts: Sequence[str] = ("10.0.0.5",), keys: SeedKeys | None = None,
                 kdf: Kdf | None = None, name: str = "ccdb", server: Any = None,
                 env_prefix: str = "LAB_CCDB") -> None:
        self.era, self.apps, self.hosts, self.name = era, apps, list(hosts), name
        self.kdf: Kdf = kdf or ("legacy" if era == "2014" else "mixed")
        self.keys = keys or (SeedKeys(db_encryption_key="lab-2014-key") if era == "2014" else
                             SeedKeys(db_encryption_key="lab-key-0",
                                      keys={"lab_key_1": "lab-key-1"}, labels=("lab_key_1", None)))
        self.env_prefix = env_prefix
        self._server = server
        self._own: Any = None
        self.dsn = ""
        self.counts: dict[str, int] = {}

    def __enter__(self) -> Self:
        if self._server is None:
            from runbook.lab.servers import Postgres

            self._own = Postgres().__enter__()
            self._server = self._own
        self.dsn = self._server.create_database(self.name)
        self.counts = seed(self.dsn, era=self.era, apps=self.apps, hosts=self.hosts,
                           keys=self.keys, kdf=self.kdf)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.__exit__(None, None, None)
            self._own = None

    def profile(self) -> dict[str, Any]:
        p = self.env_prefix
        refs = {label: f"${{env:{p}_KEY_{i}}}" for i, label in enumerate(self.keys.keys)}
        profile: dict[str, Any] = {"dsn": f"${{env:{p}_DSN}}",
                                   "db_encryption_key": f"${{env:{p}_DEFAULT_KEY}}"}
        if refs:
            profile["database_encryption"] = {"keys": refs,
                                              "current_key_label": next(iter(self.keys.keys))}
        return profile

    def environ(self) -> dict[str, str]:
        p = self.env_prefix
        env = {f"{p}_DSN": self.dsn, f"{p}_DEFAULT_KEY": self.keys.db_encryption_key}
        env.update({f"{p}_KEY_{i}": key for i, key in enumerate(self.keys.keys.values())})
        return env
