"""Which CCDB columns can carry a host, for both the 2014 and the current schema.

Source: cloud_controller_ng models calling ``set_field_as_encrypted`` (HEAD) and the
2014 ``encrypt ... salt: :salt`` calls; plaintext URL columns from the same models.
Only columns that exist in the connected database are used, so one catalogue serves
every schema era.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: ``hosts``: rewrite hosts inside the value; ``secret``: a password or token, never
#: rewritten, only re-encrypted when the row moves to another key label.
Kind = Literal["hosts", "secret"]


@dataclass(frozen=True)
class Encrypted:
    column: str
    salt: str
    kind: Kind = "hosts"


@dataclass(frozen=True)
class TableSpec:
    """One table: its encrypted columns (one label/iterations pair per row) and its
    plaintext columns that may hold URLs or hosts."""

    name: str
    encrypted: tuple[Encrypted, ...] = ()
    plain: tuple[str, ...] = ()
    has_label: bool = True
    has_iterations: bool = True
    #: plaintext columns holding application security group rules (JSON with destinations)
    asg: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(e.column for e in self.encrypted) + self.plain

    def is_encrypted(self, column: str) -> bool:
        return any(e.column == column for e in self.encrypted)


def _enc(column: str, salt: str = "salt", kind: Kind = "hosts") -> Encrypted:
    return Encrypted(column, salt, kind)


CATALOGUE: tuple[TableSpec, ...] = (
    TableSpec("service_instances", (_enc("credentials"),),
              ("dashboard_url", "syslog_drain_url", "route_service_url", "gateway_data")),
    TableSpec("service_bindings",
              (_enc("credentials"), _enc("volume_mounts", "volume_mounts_salt")),
              ("syslog_drain_url", "gateway_data", "configuration", "binding_options")),
    TableSpec("service_keys", (_enc("credentials"),)),
    TableSpec("service_brokers", (_enc("auth_password", kind="secret"),), ("broker_url",)),
    TableSpec("service_broker_update_requests", (_enc("authentication", kind="secret"),),
              ("broker_url",)),
    TableSpec("apps", (_enc("encrypted_environment_variables"),
                       _enc("encrypted_environment_json"))),  # current v3 / 2014 v2 apps
    TableSpec("env_groups", (_enc("environment_json"),)),
    TableSpec("tasks", (_enc("encrypted_environment_variables"),)),
    TableSpec("revisions", (_enc("encrypted_environment_variables"),)),
    TableSpec("buildpack_lifecycle_data",
              (_enc("encrypted_buildpack_url", "encrypted_buildpack_url_salt"),)),
    TableSpec("buildpack_lifecycle_buildpacks",
              (_enc("encrypted_buildpack_url", "encrypted_buildpack_url_salt"),)),
    TableSpec("cnb_lifecycle_data",
              (_enc("encrypted_registry_credentials_json",
                    "encrypted_registry_credentials_json_salt"),)),
    TableSpec("packages", (_enc("encrypted_docker_password", "docker_password_salt",
                                "secret"),)),
    TableSpec("droplets", (_enc("encrypted_docker_receipt_password",
                                "docker_receipt_password_salt", "secret"),)),
    TableSpec("processes", (_enc("encrypted_docker_credentials_json", "docker_salt"),)),
    TableSpec("service_auth_tokens", (_enc("token", kind="secret"),)),  # 2014 v1 gateways
    TableSpec("route_bindings", (), ("route_service_url",)),
    TableSpec("service_instance_operations", (), ("proposed_changes",)),
    TableSpec("security_groups", (), ("rules",), asg=("rules",)),
)
# Not in the catalogue, on purpose: encryption_key_sentinels (CC checks that a label's
# sentinel never changes).


@dataclass
class Discovered:
    """The catalogue narrowed to what the connected database has."""

    tables: list[TableSpec] = field(default_factory=list)
    era: str = "unknown"


def narrow(columns_by_table: dict[str, set[str]], only: list[str] | None) -> Discovered:
    """Keep the catalogue entries whose table and columns exist (and pass the filter)."""
    found = Discovered()
    for spec in CATALOGUE:
        if only and spec.name not in only:
            continue
        have = columns_by_table.get(spec.name)
        if not have:
            continue
        encrypted = tuple(e for e in spec.encrypted if e.column in have and e.salt in have)
        plain = tuple(c for c in spec.plain if c in have)
        if not encrypted and not plain:
            continue
        found.tables.append(TableSpec(spec.name, encrypted, plain,
                                      has_label="encryption_key_label" in have,
                                      has_iterations="encryption_iterations" in have,
                                      asg=tuple(c for c in spec.asg if c in plain)))
    with_labels = any(t.has_label for t in found.tables if t.encrypted)
    found.era = "current" if with_labels else "pre-2017"
    return found
