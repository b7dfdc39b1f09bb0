"""Plans as data: parameters + observed facts -> the exact actions. No server needed."""

from __future__ import annotations

from typing import Any

import pytest

from runbook.params import ParamErrors
from runbook.testing import make_params
from steps.dns.check import parse_server
from steps.dns.record import Rec, mirror, missing, select
from steps.dns.step import CheckDns, DualDomain, SetTtl

SOA = Rec("old.example", "SOA", "ns.old.example hostmaster.old.example 1 3600 600 86400 30",
          300, id=1)
NS = Rec("old.example", "NS", "ns.old.example", 14400, id=2)
NS_A = Rec("ns.old.example", "A", "10.0.0.2", 14400, id=3)
API = Rec("api.old.example", "A", "10.0.0.5", 300, id=4)
WILD = Rec("*.old.example", "A", "10.0.0.20", 300, id=5)
MX = Rec("old.example", "MX", "mail.old.example", 300, prio=10, id=6)
ALIAS = Rec("login.old.example", "CNAME", "uaa.old.example", 300, id=7)
ZONE = [SOA, NS, NS_A, API, WILD, MX, ALIAS]


def facts(second: list[Rec] | None, first: list[Rec] = ZONE) -> dict[str, Any]:
    def state(recs: list[Rec] | None) -> dict[str, Any]:
        return {"exists": recs is not None, "domain_id": 9 if recs is not None else None,
                "last_id": 40, "records": [r.to_dict() for r in recs or []]}
    return {"where": "PowerDNS database postgresql://u@db:5432/bosh", "first": state(first),
            "second": state(second)}


BASE = {"target": "t", "first_domain": "old.example", "second_domain": "New.Example."}


def lines(plan: Any) -> list[str]:
    return [a.description for a in plan.actions]


@pytest.mark.parametrize(("extra", "second", "expected"), [
    ({}, None, [
        "create zone new.example (NATIVE) in the PowerDNS database postgresql://u@db:5432/bosh",
        "add new.example 300 SOA ns.new.example hostmaster.new.example 1 3600 600 86400 30",
        "add new.example 14400 NS ns.new.example",
        "add ns.new.example 14400 A 10.0.0.2",
        "add api.new.example 300 A 10.0.0.5",
        "add *.new.example 300 A 10.0.0.20"]),
    ({"mirror": ["MX", "CNAME"], "ttl": 60}, [], [
        "add new.example 60 MX 10 mail.new.example",
        "add login.new.example 60 CNAME uaa.new.example"]),
    ({"names": ["@"]}, [Rec("new.example", "SOA", "other", 300)], [
        "add new.example 14400 NS ns.new.example"]),  # the zone keeps its own SOA
    ({"provider": "rfc2136", "mirror": ["SOA", "wildcard"]}, [], [
        "add *.new.example 300 A 10.0.0.20"]),  # RFC 2136 never adds an SOA
    ({"flush_command": ["powerdns_ctl", "flush"], "mirror": ["wildcard"]}, [], [
        "add *.new.example 300 A 10.0.0.20", "run powerdns_ctl flush"]),
])
def test_dual_domain_plan(extra: dict[str, Any], second: list[Rec] | None,
                          expected: list[str]) -> None:
    plan = DualDomain().plan(make_params(DualDomain, {**BASE, **extra}), facts(second))
    assert lines(plan) == expected
    assert plan.mutation == "mutating"


def test_dual_domain_plan_is_unchanged_when_all_copies_exist() -> None:
    copies = [mirror(r, "old.example", "new.example") for r in (SOA, NS, NS_A, API, WILD)]
    plan = DualDomain().plan(make_params(DualDomain, BASE), facts(copies))
    assert plan.empty and plan.mutation == "unchanged"
    assert plan.reason == "zone new.example already serves every selected record"


def test_dual_domain_plan_offline_is_undetermined() -> None:
    plan = DualDomain().plan(make_params(DualDomain, BASE), None)
    assert plan.mutation == "undetermined"
    assert lines(plan) == [("add zone new.example with copies of the SOA, NS, A, wildcard "
                           "records of old.example (powerdns-db)")]


def test_dual_domain_revert_plan_lists_what_was_added() -> None:
    record = {"zone": "new.example", "created_zone": True, "domain_id": 9,
              "records": [Rec("api.new.example", "A", "10.0.0.5", 300, id=41).to_dict()]}
    step, params = DualDomain(), make_params(DualDomain, BASE)
    assert lines(step.revert_plan(params, record)) == [
        "remove api.new.example 300 A 10.0.0.5 (row 41)",
        "remove zone new.example if it holds no other record"]
    assert step.revert_plan(params, {"zone": "new.example", "records": []}).empty


def test_set_ttl_plan_without_wait_tells_when_to_switch() -> None:
    params = make_params(SetTtl, {"target": "t", "zone": "old.example", "ttl": 60,
                                  "wait": False, "names": ["api"]})
    zone = {"where": "x", "exists": True, "records": [API.to_dict()]}
    plan = SetTtl().plan(params, zone)
    assert lines(plan) == ["set TTL of api.old.example A 10.0.0.5: 300 -> 60"]
    assert plan.reason == "answers cached with the old TTL live up to 5m after this step: " \
                          "switch no earlier"
    raised = SetTtl().plan(make_params(SetTtl, {"target": "t", "zone": "old.example",
                                                "ttl": 3600}), zone)
    assert raised.reason == "no wait: the old TTLs are not longer than the new one"
    assert SetTtl().estimate(make_params(SetTtl, {"target": "t", "zone": "z", "ttl": 3600}),
                             zone) == 0.0


def test_selection_and_mirroring_rules() -> None:
    assert select(ZONE, "old.example", ["wildcard"], None) == [WILD]
    assert select(ZONE, "old.example", ["A"], None) == [NS_A, API]
    assert select(ZONE, "old.example", ["A"], None, by_type=True) == [NS_A, API, WILD]
    assert select(ZONE, "old.example", ["A", "wildcard"], ["[*]"]) == [WILD]
    assert mirror(ALIAS, "old.example", "new.example").content == "uaa.new.example"
    outside = Rec("x.old.example", "CNAME", "cdn.provider.net", 300)
    assert mirror(outside, "old.example", "new.example").content == "cdn.provider.net"
    # a name that merely ends with the same letters is not inside the zone
    assert mirror(Rec("a.bold.example", "A", "1.2.3.4", 1), "old.example",
                  "new.example").name == "a.bold.example"
    twice = [API, API]
    assert missing(twice, []) == [API]


def test_unknown_kind_is_a_parameter_error() -> None:
    with pytest.raises(ParamErrors) as err:
        make_params(DualDomain, {**BASE, "mirror": ["A", "wildcards"]})
    assert err.value.errors[0].path == ("mirror", 1)


def test_check_servers_and_plan() -> None:
    assert parse_server("10.0.0.2") == ("10.0.0.2", 53)
    assert parse_server("10.0.0.2:5353") == ("10.0.0.2", 5353)
    assert parse_server("[::1]:5353") == ("::1", 5353)
    assert parse_server("::1") == ("::1", 53)
    params = make_params(CheckDns, {"servers": ["10.0.0.2"], "target": "dest", "names": [
        {"name": "*.apps.old.example", "expect": ["10.0.0.20"]}]})
    plan = CheckDns().plan(params, None)
    assert lines(plan) == [("ask 10.0.0.2:53, target dest for runbook-probe.apps.old.example A, "
                           "expect 10.0.0.20")]
    assert plan.mutation == "read-only" and plan.reason == "asked every 2s for up to 1m"


def test_step_module_loads_without_the_integration_libraries() -> None:
    """`runbook validate` imports step modules: psycopg and dnspython must wait for a run."""
    import subprocess
    import sys

    code = ("import sys, steps.dns.step; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dns', 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("provider", "target", "message"), [
    ("powerdns-db", {}, ("no PowerDNS database given: set 'dsn' under the target's 'powerdns' "
                        "key or the step's 'dsn' parameter")),
    ("rfc2136", {"dns": {"port": 53}}, ("no DNS server given: set 'server' under the target's "
                                       "'dns' key or the step's 'server' parameter")),
    ("rfc2136", {"dns": {"server": "10.0.0.2", "tsig_key_name": "k", "tsig_secret": "plain"}},
     ("the target's dns.tsig_secret must be a secret reference like ${env:NAME}; secrets are "
     "never written into a runbook")),
])
def test_incomplete_target_is_a_clear_error(tmp_path: Any, provider: str,
                                            target: dict[str, Any], message: str) -> None:
    from runbook.api import StepFailed
    from runbook.testing import make_context

    ctx = make_context(tmp_path, targets={"t": target})
    with pytest.raises(StepFailed) as err:
        DualDomain().observe(ctx, make_params(DualDomain, {**BASE, "provider": provider}))
    assert str(err.value) == message
