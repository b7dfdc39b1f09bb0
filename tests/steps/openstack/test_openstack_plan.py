"""The pure part of openstack.import: resource file + destination facts -> plan, as data."""

from __future__ import annotations

from typing import Any

import pytest

from runbook.api import StepFailed
from runbook.testing import make_params
from steps.openstack.resources import FORMAT, check_document
from steps.openstack.step import ImportResources

EMPTY: dict[str, list[Any]] = {"networks": [], "subnets": [], "routers": [],
                               "security_groups": []}
PUBLIC = {"id": "ext-1", "name": "public", "mtu": 1500}


def doc(**sections: Any) -> dict[str, Any]:
    return {"format": FORMAT, **sections}


def plan_lines(document: dict[str, Any], destination: dict[str, Any] | None = None,
               **with_: Any) -> tuple[list[str], str]:
    params = make_params(ImportResources, {"target": "t", "path": "r.yml", **with_})
    facts = {"document": document, "destination": {**EMPTY, **(destination or {})}}
    plan = ImportResources().plan(params, facts)
    return [a.description for a in plan.actions], plan.reason


CASES = [
    pytest.param(
        doc(networks=[{"name": "cf", "mtu": 1450}],
            subnets=[{"name": "z1", "network": "cf", "cidr": "10.0.0.0/24"}],
            routers=[{"name": "r", "external_network": "public", "interfaces": ["z1"]}]),
        {"networks": [PUBLIC]}, {},
        ["create network 'cf'", "create subnet 'z1' in network 'cf' (10.0.0.0/24)",
         "create router 'r'", "attach subnet 'z1' to router 'r'"],
        id="dependencies-first"),
    pytest.param(
        doc(networks=[{"name": "cf", "mtu": 1450, "description": None}]),
        {"networks": [{"id": "n1", "name": "cf", "mtu": 1450, "description": "old"}]}, {},
        [], id="null-fields-are-not-compared"),
    pytest.param(
        doc(networks=[{"name": "cf", "mtu": 1450, "admin_state_up": True}]),
        {"networks": [{"id": "n1", "name": "cf", "mtu": 1500, "admin_state_up": True}]}, {},
        ["update network 'cf': mtu 1500 -> 1450"], id="differing-field-updates"),
    pytest.param(
        doc(security_groups=[{"name": "web", "rules": [
            {"direction": "egress", "ethertype": "IPv4"},
            {"direction": "ingress", "protocol": "tcp", "port_range_min": 80,
             "port_range_max": 443, "remote_ip_prefix": "0.0.0.0/0"}]}]),
        {}, {},
        ["create security group 'web'",
         "add rule to security group 'web': ingress IPv4 tcp 80-443 from 0.0.0.0/0"],
        id="neutron-default-egress-rules-are-not-added-twice"),
    pytest.param(
        doc(security_groups=[{"name": "web", "rules": [
            {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
             "port_range_max": 22, "remote_group": "web"}]}]),
        {"security_groups": [{"id": "g1", "name": "web", "description": "", "rules": [
            {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
             "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": None,
             "remote_group_id": "g1"}]}]}, {},
        [], id="remote-group-matched-by-name"),
    pytest.param(
        doc(security_groups=[{"name": "web", "rules": [
            {"direction": "ingress", "protocol": "6", "port_range_min": 80,
             "port_range_max": 80}, {"direction": "ingress", "protocol": "any"}]}]),
        {"security_groups": [{"id": "g1", "name": "web", "rules": [
            {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
             "port_range_min": 80, "port_range_max": 80},
            {"direction": "ingress", "ethertype": "IPv4", "protocol": None}]}]}, {},
        [], id="protocol-by-number-or-name"),
    pytest.param(
        doc(routers=[{"name": "r", "interfaces": ["z1", "z2"]}]),
        {"subnets": [{"id": "s1", "name": "z1"}, {"id": "s2", "name": "z2"}],
         "routers": [{"id": "r1", "name": "r", "interface_subnet_ids": ["s1"]}]}, {},
        ["attach subnet 'z2' to router 'r'"], id="only-missing-interfaces-are-added"),
    pytest.param(
        doc(networks=[{"name": "cf-a"}, {"name": "cf-b"}, {"name": "bosh"}]),
        {}, {"include": ["cf-*"], "exclude": ["*-b"]},
        ["create network 'cf-a'"], id="name-globs"),
    pytest.param(
        doc(networks=[{"name": "cf"}], security_groups=[{"name": "web"}]),
        {}, {"kinds": ["security_groups"]},
        ["create security group 'web'"], id="kinds"),
]


@pytest.mark.parametrize("document, destination, with_, expected", CASES)
def test_plan_cases(document: dict[str, Any], destination: dict[str, Any],
                    with_: dict[str, Any], expected: list[str]) -> None:
    lines, _ = plan_lines(document, destination, **with_)
    assert lines == expected


def test_unchanged_plan_says_how_many_match() -> None:
    lines, reason = plan_lines(doc(networks=[{"name": "cf", "mtu": 1450}]),
                               {"networks": [{"id": "n1", "name": "cf", "mtu": 1450}]})
    assert (lines, reason) == ([], "all 1 selected resources already match r.yml")


@pytest.mark.parametrize("document, destination, message", [
    (doc(subnets=[{"name": "z1", "network": "cf", "cidr": "10.0.0.0/24"}]), {},
     ("subnet 'z1' needs network 'cf', which is neither on the destination cloud nor "
     "imported by this step; import it first or fix the reference in the resource file")),
    (doc(routers=[{"name": "r", "external_network": "ext-net"}]), {},
     ("router 'r' needs network 'ext-net', which is neither on the destination cloud nor "
     "imported by this step; import it first or fix the reference in the resource file")),
    (doc(security_groups=[{"name": "a", "rules": [{"remote_group": "b"}]}]), {},
     ("a rule of security group 'a' needs security group 'b', which is neither on the "
     "destination cloud nor imported by this step; import it first or fix the reference "
     "in the resource file")),
    (doc(subnets=[{"name": "z1", "network": "cf", "cidr": "10.0.0.0/24"}]),
     {"networks": [{"id": "n1", "name": "cf"}],
      "subnets": [{"id": "s1", "name": "z1", "network_id": "n1", "cidr": "10.9.0.0/24"}]},
     ("subnet 'z1' already exists on the destination with cidr 10.9.0.0/24 (file: "
     "10.0.0.0/24); Neutron cannot change that in place: rename or delete one of them")),
    (doc(networks=[{"name": "cf"}]),
     {"networks": [{"id": "n1", "name": "cf"}, {"id": "n2", "name": "cf"}]},
     ("the destination cloud has two networks named 'cf'; rename one so resources can be "
     "matched by name")),
])
def test_problems_are_named_before_any_change(document: dict[str, Any],
                                              destination: dict[str, Any],
                                              message: str) -> None:
    with pytest.raises(StepFailed) as caught:
        plan_lines(document, destination)
    assert str(caught.value) == message


@pytest.mark.parametrize("document, message", [
    ({"networks": []}, ("r.yml is not an OpenStack resource file (its 'format' must be "
                       f"'{FORMAT}'); write it with openstack.export")),
    (doc(networks=[{"name": "a"}, {"name": "a"}]),
     "r.yml: two networks are named 'a'; names must be unique because imports match by name"),
    (doc(subnets=[{"cidr": "10.0.0.0/24"}]), "r.yml: subnets[0] needs a 'name'"),
])
def test_malformed_files_are_rejected(document: Any, message: str) -> None:
    with pytest.raises(StepFailed) as caught:
        check_document(document, "r.yml")
    assert str(caught.value) == message


def test_offline_plan_is_undetermined() -> None:
    params = make_params(ImportResources, {"target": "new", "path": "r.yml"})
    plan = ImportResources().plan(params, None)
    assert plan.mutation == "undetermined"
    assert plan.actions[0].description == (
        "import networks, subnets, routers, security_groups from r.yml into target 'new'")


def test_step_module_imports_no_integration_library() -> None:
    import subprocess
    import sys

    code = ("import sys, steps.openstack.step; "
            "print(sorted(m for m in ('openstack', 'keystoneauth1') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
