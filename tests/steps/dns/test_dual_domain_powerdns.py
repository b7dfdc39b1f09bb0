"""dns.dual_domain with the BOSH PowerDNS tables, checked through a real PowerDNS."""

from __future__ import annotations

import json
from pathlib import Path

import dns.message
import dns.query
import psycopg
import pytest

from runbook.api import StepFailed
from runbook.lab.powerdns import PowerDns, table_rows
from runbook.testing import make_context, make_params
from steps.dns.step import DualDomain

PARAMS = {"target": "destination", "first_domain": "microbosh", "second_domain": "a9s.example"}


def context(tmp_path: Path, dsn: str):  # type: ignore[no-untyped-def]
    return make_context(tmp_path, targets={"destination": {"powerdns": {"dsn": "${env:PDNS_DSN}"}}},
                        environ={"PDNS_DSN": dsn})


def ask(server: PowerDns, name: str, rtype: str = "A") -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, rtype), server.address,
                             port=server.port, timeout=3)
    return sorted(r.to_text() for rrset in response.answer if rrset.rdtype ==
                  dns.rdatatype.from_text(rtype) for r in rrset)


def run(step: DualDomain, ctx, params):  # type: ignore[no-untyped-def]
    facts = step.observe(ctx, params)
    plan = step.plan(params, facts)
    return plan, step.apply(ctx, params, plan)


def test_second_domain_is_served_and_revert_restores_the_tables(
        tmp_path: Path, pdns_dsn: str, powerdns: PowerDns) -> None:
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    params = make_params(DualDomain, PARAMS)
    before = table_rows(pdns_dsn)
    assert ask(powerdns, "0.api.default.cf.a9s.example") == []

    plan, result = run(step, ctx, params)

    assert [a.description for a in plan.actions if "add " in a.description] == [
        "add a9s.example 300 SOA localhost hostmaster@localhost 0 10800 604800 30 30",
        "add a9s.example 14400 NS ns.a9s.example",
        "add ns.a9s.example 14400 A 10.0.0.2",
        "add 0.api.default.cf.a9s.example 300 A 10.0.0.5",
        "add 0.uaa.default.cf.a9s.example 300 A 10.0.0.6",
        "add *.a9s.example 300 A 10.0.0.20",
    ]
    assert plan.actions[0].description.startswith("create zone a9s.example (NATIVE)")
    assert all(a.mutates for a in plan.actions)
    assert result.outputs["created_zone"] is True and result.outputs["added"] == 6
    assert ask(powerdns, "0.api.default.cf.a9s.example") == ["10.0.0.5"]
    assert ask(powerdns, "anything.a9s.example") == ["10.0.0.20"]
    assert ask(powerdns, "a9s.example", "NS") == ["ns.a9s.example."]
    assert ask(powerdns, "0.api.default.cf.microbosh") == ["10.0.0.5"]  # first zone untouched
    assert step.verify(ctx, params, result) is True

    step.revert(ctx, params, json.loads(json.dumps(result.record)))

    assert table_rows(pdns_dsn) == before
    assert ask(powerdns, "0.api.default.cf.a9s.example") == []
    step.revert(ctx, params, result.record)  # idempotent
    assert table_rows(pdns_dsn) == before


def test_revert_keeps_records_someone_else_added_meanwhile(tmp_path: Path, pdns_dsn: str) -> None:
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    params = make_params(DualDomain, PARAMS)
    _, result = run(step, ctx, params)
    with psycopg.connect(pdns_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO records (domain_id, name, type, content, ttl) SELECT id, "
                     "'gw.a9s.example', 'A', '10.9.9.9', 60 FROM domains "
                     "WHERE name = 'a9s.example'")
        # the same content as a mirrored record, but a different row: not ours
        conn.execute("INSERT INTO records (domain_id, name, type, content, ttl) SELECT id, "
                     "'0.api.default.cf.a9s.example', 'A', '10.0.0.5', 300 FROM domains "
                     "WHERE name = 'a9s.example'")

    step.revert(ctx, params, result.record)

    with psycopg.connect(pdns_dsn) as conn:
        left = conn.execute("SELECT r.name, r.content FROM records r JOIN domains d ON "
                            "d.id = r.domain_id WHERE d.name = 'a9s.example' ORDER BY r.id")
        assert left.fetchall() == [("gw.a9s.example", "10.9.9.9"),
                                   ("0.api.default.cf.a9s.example", "10.0.0.5")]


def test_second_run_is_unchanged(tmp_path: Path, pdns_dsn: str) -> None:
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    params = make_params(DualDomain, PARAMS)
    run(step, ctx, params)
    after_first = table_rows(pdns_dsn)

    plan, result = run(step, ctx, params)

    assert plan.empty and plan.reason == "zone a9s.example already serves every selected record"
    assert result.changed is False and result.record["records"] == []
    step.revert(ctx, params, result.record)  # the second run did nothing, undoes nothing
    assert table_rows(pdns_dsn) == after_first


def test_existing_zone_gets_only_the_missing_selected_records(tmp_path: Path,
                                                               pdns_dsn: str) -> None:
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    params = make_params(DualDomain, {**PARAMS, "mirror": ["A"], "names": ["0.api.*", "ns"],
                                      "ttl": 60})
    with psycopg.connect(pdns_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO domains (name, type) VALUES ('a9s.example', 'NATIVE')")
        conn.execute("INSERT INTO records (domain_id, name, type, content, ttl) SELECT id, "
                     "'ns.a9s.example', 'A', '10.0.0.2', 14400 FROM domains "
                     "WHERE name = 'a9s.example'")
    before = table_rows(pdns_dsn)

    plan, result = run(step, ctx, params)

    assert [a.description for a in plan.actions] == [
        "add 0.api.default.cf.a9s.example 60 A 10.0.0.5"]
    assert result.outputs["created_zone"] is False
    step.revert(ctx, params, result.record)
    assert table_rows(pdns_dsn) == before  # the zone it did not create stays


def test_revert_from_the_checkpoint_taken_before_the_change(tmp_path: Path,
                                                            pdns_dsn: str) -> None:
    """A crash after the commit but before the ids were recorded is still undone."""
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    params = make_params(DualDomain, PARAMS)
    before = table_rows(pdns_dsn)
    run(step, ctx, params)
    pending = ctx.checkpoints[0]  # type: ignore[attr-defined]
    assert "pending" in pending and len(pending["pending"]) == 6

    step.revert(ctx, params, pending)

    assert table_rows(pdns_dsn) == before


def test_nothing_secret_leaves_the_step(tmp_path: Path, postgres_server, pdns_dsn: str) -> None:  # type: ignore[no-untyped-def]
    secret_dsn = pdns_dsn.replace("postgres@", "postgres:pw-Zq81-hidden@")
    step, ctx = DualDomain(), context(tmp_path, secret_dsn)
    params = make_params(DualDomain, PARAMS)
    plan, result = run(step, ctx, params)
    shown = json.dumps([plan.to_dict(), result.outputs, result.record, ctx.checkpoints])  # type: ignore[attr-defined]
    assert "pw-Zq81-hidden" not in shown
    assert "PowerDNS database postgresql://postgres@127.0.0.1" in plan.actions[0].description


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    from runbook.lab.servers import free_port

    dsn = f"postgresql://postgres:pw-Zq81-hidden@127.0.0.1:{free_port()}/bosh"
    step, ctx = DualDomain(), context(tmp_path, dsn)
    with pytest.raises(StepFailed) as err:
        step.observe(ctx, make_params(DualDomain, PARAMS))
    message = str(err.value)
    assert message.startswith("cannot connect to the PowerDNS database "
                              f"postgresql://postgres@127.0.0.1:{dsn.split(':')[3].split('/')[0]}/bosh (")
    assert message.endswith("check that PostgreSQL runs there and the target's powerdns.dsn; "
                            "nothing was changed")
    assert "pw-Zq81-hidden" not in message


def test_unknown_first_domain_changes_nothing(tmp_path: Path, pdns_dsn: str) -> None:
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    before = table_rows(pdns_dsn)
    with pytest.raises(StepFailed, match="zone nosuch.example is not found at the PowerDNS "
                                         "database"):
        step.apply(ctx, make_params(DualDomain, {**PARAMS, "first_domain": "nosuch.example"}),
                   None)  # type: ignore[arg-type]
    assert table_rows(pdns_dsn) == before


def test_flush_command_runs_after_apply_and_after_revert(tmp_path: Path, pdns_dsn: str) -> None:
    marker = tmp_path / "flushed"
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    params = make_params(DualDomain, {**PARAMS, "mirror": ["wildcard"], "flush_command": [
        "sh", "-c", f"echo flush >> {marker}"]})
    plan, result = run(step, ctx, params)
    assert plan.actions[-1].description == f"run sh -c echo flush >> {marker}"
    assert marker.read_text() == "flush\n"
    step.revert(ctx, params, result.record)
    assert marker.read_text() == "flush\nflush\n"
    step.revert(ctx, params, result.record)  # nothing left to remove: no flush
    assert marker.read_text() == "flush\nflush\n"


def test_failing_flush_is_reported_and_the_change_stays_revertible(tmp_path: Path,
                                                                   pdns_dsn: str) -> None:
    step, ctx = DualDomain(), context(tmp_path, pdns_dsn)
    before = table_rows(pdns_dsn)
    params = make_params(DualDomain, {**PARAMS, "flush_command": ["false"]})
    with pytest.raises(StepFailed, match=r"^false exited 1: the DNS change is made but the "
                                         r"server may answer from its cache"):
        run(step, ctx, params)
    step.revert(ctx, make_params(DualDomain, PARAMS), ctx.checkpoints[-1])  # type: ignore[attr-defined]
    assert table_rows(pdns_dsn) == before
