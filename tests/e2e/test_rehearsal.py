"""The reference runbook rehearsed in the lab: the whole move, then a move that fails
after the Cloud Controller DB rewrite and must leave the lab as it found it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runbook.lab import foundation as F
from tests.e2e.conftest import Cli, outputs, write_targets

pytestmark = pytest.mark.slow

CC_TABLES = ("apps", "service_instances", "service_bindings", "service_keys",
             "service_brokers", "env_groups")


def _secret(lab: Any, name: str) -> str:
    return (lab.dir / "secrets" / name).read_text().rstrip("\n")


def cc_rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the Cloud Controller tables, as text, in a stable order."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {t: [tuple(r) for r in conn.execute(
            f"SELECT t::text FROM {t} t ORDER BY id").fetchall()] for t in CC_TABLES}


def decrypted_credentials(lab: Any) -> list[str]:
    import psycopg

    from steps.ccdb.crypto import KeyRing, decrypt

    ring = KeyRing(_secret(lab, "ccdb-db-encryption-key"),
                   {"k2025": _secret(lab, "ccdb-key-k2025")}, "k2025")
    with psycopg.connect(lab.facts["ccdb_dsn"]) as conn:
        rows = conn.execute("SELECT credentials, salt, encryption_key_label, "
                            "encryption_iterations FROM service_instances").fetchall()
    return [decrypt(c, ring.key_for(label), salt, it) for c, salt, label, it in rows]


def resolve(lab: Any, name: str) -> list[str]:
    import dns.message
    import dns.query
    import dns.rcode

    server = lab.targets["destination"]["dns"]
    reply = dns.query.udp(dns.message.make_query(name, "A"), server["server"],
                          port=server["port"], timeout=2)
    if reply.rcode() != dns.rcode.NOERROR:
        return []
    return sorted(str(rd) for rrset in reply.answer for rd in rrset)


def through_gateway(lab: Any) -> str:
    with urllib.request.urlopen(lab.facts["edge_gateway"]["url"], timeout=5) as reply:
        return str(reply.read().decode())


def source_states(lab: Any) -> dict[str, str]:
    return {f"{i['group']}/{i['index']}": i["state"]
            for i in lab.handles["bosh_source"].instances("cf")}


@pytest.mark.parametrize("lab", [(), ("pdns", "nginx", "haproxy", "sshd")], indirect=True,
                         ids=["installed", "substituted"])
def test_the_whole_move(lab: Any, cli: Cli, tmp_path: Path) -> None:
    assert through_gateway(lab).startswith("router=old-")
    targets = write_targets(lab, tmp_path / "lab-targets.yml")

    done = cli("rehearse", "runbooks/cf-vcloud-to-openstack.yml", "--targets", str(targets))

    assert done.returncode == 0, done.stdout + done.stderr
    _, state, rows = outputs(tmp_path / "state.db")
    assert state == "succeeded"
    states = {key: row.state for key, row in rows.items()}
    assert states.pop("go-no-go") == "skipped"  # only asked in a real run
    assert set(states.values()) == {"succeeded"}, states
    assert "HTML report: " in done.stdout and "Steps:" in done.stdout

    # The Cloud Controller DB points at the new hosts, encrypted columns included.
    creds = decrypted_credentials(lab)
    assert len(creds) == F.APPS
    for old in F.SERVICE_HOSTS:
        assert not any(old in c for c in creds)
    assert all(any(new in c for new in F.SERVICE_HOSTS.values()) for c in creds)
    assert rows["rewrite-ccdb"].outputs["changed"] > 0
    # Application security groups allow the new service network instead of the old one.
    import psycopg

    with psycopg.connect(lab.facts["ccdb_dsn"]) as conn:
        destinations = [rule["destination"] for (rules,) in conn.execute(
            "SELECT rules FROM security_groups") for rule in json.loads(rules)]
    (old_net, new_net), = F.SERVICE_NETWORKS.items()
    assert new_net in destinations and old_net not in destinations

    # Both domains resolve at the new stack's DNS.
    for domain in (F.OLD_DOMAIN, F.NEW_DOMAIN):
        assert resolve(lab, f"api.{domain}") == [F.NEW_STACK_DNS["api"]]
        assert resolve(lab, f"some-app.{domain}") == [F.NEW_WILDCARD]

    # The routing tables compared equal, and were not empty.
    compared = rows["compare-routes"].outputs
    assert compared["passed"] is True
    assert compared["routes_old"] == compared["routes_new"] == F.ROUTES
    assert compared["missing"] == compared["extra"] == compared["missing_endpoints"] == 0

    # The gateway sends customers to the new routers.
    upstream = Path(lab.facts["edge_gateway"]["upstream_file"]).read_text()
    for address in lab.facts["new_routers"]:
        assert address in upstream
    for address in lab.facts["old_routers"]:
        assert address not in upstream
    assert through_gateway(lab).startswith("router=new-")

    # The final sync copied what the old cc_db wrote until it was stopped.
    for disk in lab.facts["disks"]:
        src, dst = Path(disk["source"]), Path(disk["destination"])
        assert sorted(p.name for p in (dst / "data").iterdir()) == \
            sorted(p.name for p in (src / "data").iterdir())

    # Nothing secret reached the state store, a step log, an artifact or the output.
    written = [tmp_path / "state.db", *(p for p in (tmp_path / "runs").rglob("*") if p.is_file())]
    blobs = [p.read_bytes() for p in written] + [(done.stdout + done.stderr).encode()]
    for secret in (lab.dir / "secrets").iterdir():
        if secret.name == "clouds.yaml":  # a file the SDK reads, not a single value
            continue
        value = secret.read_text().rstrip("\n").encode()
        assert not any(value in blob for blob in blobs), f"{secret.name} leaked"


def test_a_fault_after_the_rewrite_rolls_everything_back(lab: Any, cli: Cli,
                                                         tmp_path: Path) -> None:
    from runbook.lab.powerdns import table_rows

    before_cc = cc_rows(lab.facts["ccdb_dsn"])
    before_dns = table_rows(lab.facts["powerdns_dsn"])
    before_source = source_states(lab)
    assert set(before_source.values()) == {"started"}
    # The Cloud Controller does not come up on the new stack: injected in the director.
    lab.handles["bosh_destination"].fail_next("start", "api", "api/0 failed to start")
    targets = write_targets(lab, tmp_path / "lab-targets.yml")

    done = cli("rehearse", "runbooks/cf-vcloud-to-openstack.yml", "--targets", str(targets))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed at step 'start-cloud-controller'" in done.stderr
    assert "rolled back" in done.stderr
    run_id, state, rows = outputs(tmp_path / "state.db")
    assert rows["rewrite-ccdb"].state == "reverted"
    assert rows["dual-domain"].state == "reverted"
    assert rows["freeze-old-stack"].state == "reverted"
    assert "switch-gateway" not in rows or rows["switch-gateway"].state == "pending"

    assert cc_rows(lab.facts["ccdb_dsn"]) == before_cc  # byte for byte
    assert table_rows(lab.facts["powerdns_dsn"]) == before_dns  # the second domain is gone
    assert resolve(lab, f"api.{F.OLD_DOMAIN}") == []
    assert source_states(lab) == before_source  # the old stack runs again
    assert through_gateway(lab).startswith("router=old-")
    report = json.loads(cli("report", run_id, "--format", "json").stdout)
    assert report["state"] == state
