"""dns.set_ttl on the BOSH PowerDNS tables and dns.check against a real PowerDNS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook.api import FakeClock, StepFailed
from runbook.lab.powerdns import PowerDns, table_rows
from runbook.lab.servers import free_port
from runbook.testing import make_context, make_params
from steps.dns.step import CheckDns, DualDomain, SetTtl


def context(tmp_path: Path, dsn: str, clock: FakeClock | None = None) -> Any:
    return make_context(tmp_path, targets={"dest": {"powerdns": {"dsn": "${env:PDNS_DSN}"}}},
                        environ={"PDNS_DSN": dsn}, clock=clock)


def ttls(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT name, type, ttl FROM records ORDER BY id").fetchall()
    return {f"{n} {t}": ttl for n, t, ttl in rows}


TTL = {"target": "dest", "zone": "microbosh", "ttl": 60}


def test_set_ttl_plans_the_wait_lowers_and_revert_restores(tmp_path: Path,
                                                           pdns_dsn: str) -> None:
    clock = FakeClock()
    step, ctx = SetTtl(), context(tmp_path, pdns_dsn, clock)
    params = make_params(SetTtl, TTL)
    before = table_rows(pdns_dsn)

    facts = step.observe(ctx, params)
    plan = step.plan(params, facts)
    assert [a.description for a in plan.actions] == [
        "set TTL of ns.microbosh A 10.0.0.2: 14400 -> 60",
        "set TTL of 0.api.default.cf.microbosh A 10.0.0.5: 300 -> 60",
        "set TTL of 0.uaa.default.cf.microbosh A 10.0.0.6: 300 -> 60",
        "set TTL of *.microbosh A 10.0.0.20: 300 -> 60",
        "wait 4h (the old TTL) until no resolver serves an answer cached before the change",
    ]
    assert [a.mutates for a in plan.actions] == [True, True, True, True, False]
    assert plan.reason == "the old TTL implies a wait of 4h"
    assert step.estimate(params, facts) == 14400.0

    result = step.apply(ctx, params, plan)

    assert clock.sleeps == [14400]
    assert result.outputs["wait_seconds"] == 14400 and result.outputs["changed"] == 4
    assert ttls(pdns_dsn)["0.api.default.cf.microbosh A"] == 60
    assert ttls(pdns_dsn)["microbosh NS"] == 14400  # type not selected
    assert step.verify(ctx, params, result) is True
    assert step.plan(params, step.observe(ctx, params)).empty

    step.revert(ctx, params, result.record)
    assert table_rows(pdns_dsn) == before
    step.revert(ctx, params, result.record)  # idempotent
    assert table_rows(pdns_dsn) == before


def test_set_ttl_revert_leaves_a_ttl_someone_changed_since(tmp_path: Path,
                                                           pdns_dsn: str) -> None:
    step, ctx = SetTtl(), context(tmp_path, pdns_dsn, FakeClock())
    params = make_params(SetTtl, {**TTL, "names": ["0.*"]})
    result = step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
    with psycopg.connect(pdns_dsn, autocommit=True) as conn:
        conn.execute("UPDATE records SET ttl = 5 WHERE name = '0.uaa.default.cf.microbosh'")

    step.revert(ctx, params, result.record)

    assert ttls(pdns_dsn)["0.api.default.cf.microbosh A"] == 300
    assert ttls(pdns_dsn)["0.uaa.default.cf.microbosh A"] == 5


def test_set_ttl_forecast_without_observation() -> None:
    step = SetTtl()
    assert step.estimate(make_params(SetTtl, {**TTL, "old_ttl": "1h"})) == 3600.0
    assert step.estimate(make_params(SetTtl, {**TTL, "old_ttl": "30s"})) == 0.0
    assert step.estimate(make_params(SetTtl, {**TTL, "wait": False, "old_ttl": "1h"})) == 0.0
    assert step.estimate(make_params(SetTtl, TTL)) is None
    offline = step.plan(make_params(SetTtl, {**TTL, "old_ttl": "1h"}), None)
    assert [(a.description, a.mutates) for a in offline.actions] == [
        ("set TTL 60 on the A/AAAA/CNAME records of microbosh; then wait 1h", None)]


def test_check_reads_each_server_and_reports_answers(tmp_path: Path, pdns_dsn: str,
                                                     powerdns: PowerDns) -> None:
    with psycopg.connect(pdns_dsn, autocommit=True) as conn:
        for name, rtype, content in (("v6.microbosh", "AAAA", "2001:db8::5"),
                                     ("login.microbosh", "CNAME", "0.uaa.default.cf.microbosh")):
            conn.execute("INSERT INTO records (domain_id, name, type, content, ttl) SELECT id, "
                         "%s, %s, %s, 300 FROM domains WHERE name = 'microbosh'",
                         (name, rtype, content))
    before = table_rows(pdns_dsn)
    server = f"{powerdns.address}:{powerdns.port}"
    step, ctx = CheckDns(), make_context(tmp_path, clock=FakeClock())
    params = make_params(CheckDns, {"servers": [server, server], "names": [
        {"name": "0.api.default.cf.microbosh", "expect": ["10.0.0.5"]},
        {"name": "*.microbosh", "expect": ["10.0.0.20"]},
        {"name": "v6.microbosh", "type": "AAAA", "expect": ["2001:DB8:0::5"]},
        {"name": "login.microbosh", "type": "CNAME", "expect": ["0.uaa.default.cf.microbosh."]},
        {"name": "gone.a9s.example", "expect": []},
    ]})

    plan = step.plan(params, None)
    assert plan.mutation == "read-only"
    assert plan.actions[1].description == (
        f"ask {server}, {server} for runbook-probe.microbosh A, expect 10.0.0.20")
    result = step.apply(ctx, params, plan)

    assert result.changed is False and result.outputs["ok"] is True
    answers = result.outputs["answers"][server]
    assert answers["runbook-probe.microbosh A"] == {"status": "NOERROR", "values": ["10.0.0.20"],
                                                    "match": True}
    assert answers["v6.microbosh AAAA"]["values"] == ["2001:db8::5"]
    assert answers["login.microbosh CNAME"]["values"] == ["0.uaa.default.cf.microbosh"]
    assert answers["gone.a9s.example A"]["match"] is True
    assert table_rows(pdns_dsn) == before


def test_check_retries_until_the_records_appear(tmp_path: Path, pdns_dsn: str,
                                                powerdns: PowerDns) -> None:
    """dns.check after dns.dual_domain, the order of a runbook; the clock is fake."""
    clock = FakeClock()
    server = f"{powerdns.address}:{powerdns.port}"
    ctx = make_context(tmp_path, clock=clock,
                       targets={"dest": {"powerdns": {"dsn": "${env:PDNS_DSN}"}}},
                       environ={"PDNS_DSN": pdns_dsn})
    check = make_params(CheckDns, {"servers": [server], "interval": "5s", "timeout": "1m",
                                   "names": [{"name": "0.api.default.cf.a9s.example",
                                              "expect": ["10.0.0.5"]}]})
    dual = make_params(DualDomain, {"target": "dest", "first_domain": "microbosh",
                                    "second_domain": "a9s.example"})
    done: list[bool] = []

    def sleep(seconds: float, cancel: Any = None) -> bool:
        if not done:  # the records arrive during the first pause
            step = DualDomain()
            step.apply(ctx, dual, step.plan(dual, step.observe(ctx, dual)))
            done.append(True)
        return FakeClock.sleep(clock, seconds, cancel)

    clock.sleep = sleep  # type: ignore[method-assign]
    result = CheckDns().apply(ctx, check, CheckDns().plan(check, None))
    assert result.outputs["attempts"] == 2 and clock.sleeps == [5.0]


def test_check_fails_with_every_mismatch_after_the_timeout(tmp_path: Path,
                                                           powerdns: PowerDns) -> None:
    clock = FakeClock()
    dead = f"127.0.0.1:{free_port()}"
    server = f"{powerdns.address}:{powerdns.port}"
    params = make_params(CheckDns, {"servers": [server, dead], "timeout": "10s",
                                    "interval": "5s", "query_timeout": "0.5s",
                                    "names": [{"name": "0.api.default.cf.microbosh",
                                               "expect": ["10.9.9.9"]}]})
    with pytest.raises(StepFailed) as err:
        CheckDns().apply(make_context(tmp_path, clock=clock), params, None)  # type: ignore[arg-type]
    assert clock.sleeps == [5.0, 5.0]
    assert str(err.value).startswith(
        f"after 3 rounds in 10s: {server} answers 0.api.default.cf.microbosh A with 10.0.0.5, "
        f"expected 10.9.9.9; {dead} does not answer 0.api.default.cf.microbosh A (")
