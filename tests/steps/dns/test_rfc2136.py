"""dns.dual_domain and dns.set_ttl through TSIG-signed RFC 2136 updates to a real BIND 9."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.tsig
import dns.zone
import pytest

from runbook.api import FakeClock, StepFailed
from runbook.lab.servers import free_port
from runbook.testing import make_context, make_params
from steps.dns.step import DualDomain, SetTtl
from tests.steps.dns.conftest import READER_SECRET, WRITER_SECRET, Bind

WRONG_SECRET = "d3Jvbmctc2VjcmV0LW9mLXRoZS1yaWdodC1sZW5ndGgtMTI="


def context(tmp_path: Path, port: int, key: str = "writer", secret: str = WRITER_SECRET,
            clock: FakeClock | None = None):  # type: ignore[no-untyped-def]
    dns_target = {"server": "127.0.0.1", "port": port, "tsig_key_name": key,
                  "tsig_algorithm": "hmac-sha256", "tsig_secret": "${env:TSIG}"}
    return make_context(tmp_path, targets={"destination": {"dns": dns_target}},
                        environ={"TSIG": secret}, clock=clock)


def zone_text(bind: Bind, zone: str) -> list[str]:
    """The zone as transferred, minus the SOA (whose serial each update increments)."""
    z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", zone, port=bind.port,
                                        keyring=dns.tsig.Key("writer", WRITER_SECRET),
                                        relativize=False),
                          relativize=False)
    return sorted(line for line in z.to_text(relativize=False).splitlines() if " SOA " not in line)


def ask(bind: Bind, name: str, rtype: str = "A") -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1",
                             port=bind.port, timeout=3)
    return sorted(f"{rrset.ttl} {r.to_text()}" for rrset in response.answer for r in rrset)


PARAMS: dict[str, Any] = {"provider": "rfc2136", "target": "destination",
                          "first_domain": "old.example", "second_domain": "new.example"}


def test_dual_domain_adds_and_revert_removes_exactly_its_records(tmp_path: Path,
                                                                 bind: Bind) -> None:
    step, ctx = DualDomain(), context(tmp_path, bind.port)
    params = make_params(DualDomain, PARAMS)
    before = zone_text(bind, "new.example")

    facts = step.observe(ctx, params)
    plan = step.plan(params, facts)
    result = step.apply(ctx, params, plan)

    # SOA is the zone's own; NS ns.new.example is there already; the rest is added
    assert [a.description for a in plan.actions] == [
        "add *.new.example 300 A 10.0.0.20",
        "add api.new.example 300 A 10.0.0.5",
        "add ns.new.example 300 A 10.0.0.2",
        "add uaa.new.example 300 A 10.0.0.6",
    ]
    assert ask(bind, "api.new.example") == ["300 10.0.0.5"]
    assert ask(bind, "probe.new.example") == ["300 10.0.0.20"]
    assert ask(bind, "ns.new.example") == ["300 10.0.0.2", "300 10.1.0.2"]
    assert step.verify(ctx, params, result) is True
    assert step.plan(params, step.observe(ctx, params)).empty

    # someone adds to a name the step also wrote, and a name of their own
    update = dns.update.UpdateMessage("new.example",
                                      keyring=dns.tsig.Key("writer", WRITER_SECRET))
    update.add("api.new.example.", 300, "A", "10.7.7.7")
    update.add("gw.new.example.", 300, "A", "10.7.7.8")
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=3).rcode() == 0

    step.revert(ctx, params, json.loads(json.dumps(result.record)))

    assert ask(bind, "api.new.example") == ["300 10.7.7.7"]
    assert ask(bind, "ns.new.example") == ["300 10.1.0.2"]
    assert ask(bind, "probe.new.example") == []
    after = zone_text(bind, "new.example")
    assert sorted(set(after) - set(before)) == [
        "api.new.example. 300 IN A 10.7.7.7", "gw.new.example. 300 IN A 10.7.7.8"]
    assert set(before) <= set(after)
    step.revert(ctx, params, result.record)  # idempotent
    assert zone_text(bind, "new.example") == after


def test_zone_not_served_cannot_be_created_by_rfc2136(tmp_path: Path, bind: Bind) -> None:
    step, ctx = DualDomain(), context(tmp_path, bind.port)
    with pytest.raises(StepFailed) as err:
        step.observe(ctx, make_params(DualDomain, {**PARAMS, "second_domain": "other.example"}))
    assert str(err.value) == (
        f"zone other.example is not served by the DNS server 127.0.0.1:{bind.port} with TSIG "
        "key writer, and RFC 2136 cannot create zones; configure it there first")


def test_wrong_tsig_secret_is_a_clear_error_and_changes_nothing(tmp_path: Path,
                                                                bind: Bind) -> None:
    before = zone_text(bind, "new.example")
    step, ctx = DualDomain(), context(tmp_path, bind.port, secret=WRONG_SECRET)
    with pytest.raises(StepFailed) as err:
        step.apply(ctx, make_params(DualDomain, PARAMS), None)  # type: ignore[arg-type]
    assert str(err.value) == (
        f"transferring zone old.example: the DNS server 127.0.0.1:{bind.port} with TSIG key "
        "writer rejected the TSIG key: the server found the signature wrong (secret or "
        "algorithm differ); check the target's dns.tsig_key_name, tsig_algorithm and "
        "tsig_secret; nothing was changed")
    assert WRONG_SECRET not in str(err.value)
    assert zone_text(bind, "new.example") == before


def test_key_without_update_right_is_refused_and_changes_nothing(tmp_path: Path,
                                                                 bind: Bind) -> None:
    before = zone_text(bind, "new.example")
    step, ctx = DualDomain(), context(tmp_path, bind.port, key="reader", secret=READER_SECRET)
    params = make_params(DualDomain, PARAMS)
    with pytest.raises(StepFailed) as err:
        step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
    assert str(err.value) == (
        f"adding 4 records to zone new.example: the DNS server 127.0.0.1:{bind.port} with TSIG "
        "key reader refused the update (REFUSED); check that the zone allows updates with "
        "this key (BIND: update-policy or allow-update); nothing was changed")
    assert zone_text(bind, "new.example") == before


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    step, ctx = DualDomain(), context(tmp_path, port)
    with pytest.raises(StepFailed) as err:
        step.observe(ctx, make_params(DualDomain, {**PARAMS, "timeout": "1s"}))
    assert str(err.value).startswith(
        f"asking for the SOA of old.example: the DNS server 127.0.0.1:{port} with TSIG key "
        "writer cannot be reached (")
    assert str(err.value).endswith("check the target's dns.server and dns.port; nothing was "
                                   "changed")


def test_set_ttl_lowers_waits_and_revert_restores(tmp_path: Path, bind: Bind) -> None:
    clock = FakeClock()
    step, ctx = SetTtl(), context(tmp_path, bind.port, clock=clock)
    params = make_params(SetTtl, {"provider": "rfc2136", "target": "destination",
                                  "zone": "old.example", "ttl": 30, "names": ["api", "uaa"]})
    before = zone_text(bind, "old.example")

    facts = step.observe(ctx, params)
    plan = step.plan(params, facts)
    assert [a.description for a in plan.actions] == [
        "set TTL of api.old.example A 10.0.0.5: 300 -> 30",
        "set TTL of uaa.old.example A 10.0.0.6: 300 -> 30",
        "wait 5m (the old TTL) until no resolver serves an answer cached before the change",
    ]
    assert step.estimate(params, facts) == 300.0
    result = step.apply(ctx, params, plan)

    assert clock.sleeps == [300]
    assert ask(bind, "api.old.example") == ["30 10.0.0.5"]
    assert ask(bind, "www.old.example") == ["300 10.0.0.20"]  # not selected
    assert step.plan(params, step.observe(ctx, params)).empty

    step.revert(ctx, params, result.record)
    assert zone_text(bind, "old.example") == before


def test_dual_domain_through_powerdns_dynamic_update(tmp_path: Path, pdns_dsn: str) -> None:
    """The same provider against PowerDNS with dnsupdate on; the zone reads as before after
    revert (PowerDNS rewrites the rows it touches, so row ids are not compared)."""
    import psycopg

    from runbook.lab.powerdns import PowerDns, allow_tsig, seed_domain
    from runbook.lab.servers import ServerUnavailable
    from tests.conftest import missing

    try:
        PowerDns.binary()
    except ServerUnavailable as exc:
        missing(str(exc))
    seed_domain(pdns_dsn, "a9s.example", ns_address="10.1.0.2")
    for zone in ("microbosh", "a9s.example"):
        allow_tsig(pdns_dsn, zone, key_name="writer", algorithm="hmac-sha256",
                   secret=WRITER_SECRET)

    def content() -> list[tuple[Any, ...]]:
        with psycopg.connect(pdns_dsn) as conn:
            return sorted(conn.execute(
                "SELECT r.name, r.type, r.content, r.ttl FROM records r JOIN domains d ON "
                "d.id = r.domain_id WHERE d.name = 'a9s.example' AND r.type <> 'SOA'"
            ).fetchall())

    before = content()
    with PowerDns(pdns_dsn, dnsupdate=True) as server:
        targets = {"dest": {"dns": {"server": server.address, "port": server.port,
                                    "tsig_key_name": "writer",
                                    "tsig_secret": "${env:TSIG}"}}}
        ctx = make_context(tmp_path, targets=targets, environ={"TSIG": WRITER_SECRET})
        params = make_params(DualDomain, {"provider": "rfc2136", "target": "dest",
                                          "first_domain": "microbosh",
                                          "second_domain": "a9s.example", "mirror": ["A"],
                                          "names": ["0.*"]})
        step = DualDomain()
        result = step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
        assert result.outputs["records"] == [
            "0.api.default.cf.a9s.example 300 A 10.0.0.5",
            "0.uaa.default.cf.a9s.example 300 A 10.0.0.6"]
        response = dns.query.udp(dns.message.make_query("0.uaa.default.cf.a9s.example", "A"),
                                 server.address, port=server.port, timeout=3)
        assert [r.to_text() for rrset in response.answer for r in rrset] == ["10.0.0.6"]

        step.revert(ctx, params, result.record)
    assert [row for row in content() if row[1] is not None] == before  # ENT rows are gone too
