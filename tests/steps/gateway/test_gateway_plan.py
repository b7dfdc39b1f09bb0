"""gateway.switch: rendering and plans as data (params + facts -> actions)."""

from __future__ import annotations

from typing import Any

import pytest

from runbook.api import Action, Plan, StepFailed
from runbook.testing import make_context, make_params
from steps.gateway import config
from steps.gateway.step import SwitchGateway


def _render(kind: str, **extra: Any) -> str:
    return config.render(config.default_template(kind), kind=kind, upstream_name="cf_routers",
                         routers=["10.1.0.20:80", "10.1.0.21:80"], server_options="",
                         **extra)


def test_default_templates_render_one_server_line_per_router() -> None:
    assert _render("nginx") == (
        "# Written by gateway.switch: the routers this gateway sends traffic to.\n"
        "upstream cf_routers {\n"
        "    server 10.1.0.20:80;\n"
        "    server 10.1.0.21:80;\n"
        "}\n")
    assert _render("haproxy") == (
        "# Written by gateway.switch: the routers this gateway sends traffic to.\n"
        "backend cf_routers\n"
        "    balance roundrobin\n"
        "    server router1 10.1.0.20:80\n"
        "    server router2 10.1.0.21:80\n")


def test_template_with_an_unknown_variable_is_an_error() -> None:
    with pytest.raises(StepFailed, match="the gateway template cannot be rendered: "
                                         "'weights' is undefined"):
        config.render("{{ weights }}", kind="nginx", upstream_name="u", routers=[],
                      server_options="")


NGINX = {"kind": "nginx", "upstream_file": "/etc/nginx/cf.conf", "upstream_name": "cf_routers",
         "config": "/etc/nginx/nginx.conf", "url": "https://api.example.com/v2/info"}
POOL = {"kind": "openstack", "pool": "cf-routers", "cloud": "new", "upstream_name": "x"}


def _member(address: str, port: int = 80) -> dict[str, Any]:
    return {"id": address, "address": address, "protocol_port": port, "weight": 1, "name": ""}


PLAN_CASES = [
    pytest.param(None, Plan.of(Action.unknown("point the gateway at 10.1.0.20:80: check, "
                                               "install and reload the gateway's upstream "
                                               "section")), id="offline"),
    pytest.param({"settings": NGINX, "current": "upstream cf_routers {\n server 10.0.0.20:80;\n}",
                  "desired": "new"},
                 Plan.of(Action.read("check the new cf_routers section with nginx -t"),
                         Action.change("replace /etc/nginx/cf.conf: cf_routers -> 10.1.0.20:80 "
                                       "(was 10.0.0.20:80)"),
                         Action.change("reload nginx gracefully"),
                         Action.read("probe https://api.example.com/v2/info until 5 answers in "
                                     "a row containing 'router=new'")), id="nginx-switch"),
    pytest.param({"settings": NGINX, "current": "same", "desired": "same"},
                 Plan.unchanged("/etc/nginx/cf.conf already points at 10.1.0.20:80"),
                 id="nginx-in-place"),
    pytest.param({"settings": POOL, "members": [_member("10.0.0.20"), _member("10.0.0.21")]},
                 Plan.of(Action.change("add 10.1.0.20:80 to LBaaS pool cf-routers"),
                         Action.change("remove 10.0.0.20:80 from LBaaS pool cf-routers"),
                         Action.change("remove 10.0.0.21:80 from LBaaS pool cf-routers")),
                 id="pool-switch"),
    pytest.param({"settings": POOL, "members": [_member("10.1.0.20")]},
                 Plan.unchanged("pool cf-routers already holds exactly 10.1.0.20:80"),
                 id="pool-in-place"),
]


@pytest.mark.parametrize(("facts", "expected"), PLAN_CASES)
def test_plan(facts: dict[str, Any] | None, expected: Plan) -> None:
    params = make_params(SwitchGateway, {"routers": ["10.1.0.20:80"],
                                         "probe_contains": "router=new"})
    assert SwitchGateway().plan(params, facts) == expected


@pytest.mark.parametrize(("backend", "line"), [
    ("nginx", "check, install and reload the nginx upstream section"),
    ("openstack", "make them the LBaaS pool's members (added before old ones are removed)")])
def test_offline_plan_names_the_backend(backend: str, line: str) -> None:
    params = make_params(SwitchGateway, {"routers": ["10.1.0.20:80"], "backend": backend})
    assert SwitchGateway().plan(params, None) == Plan.of(
        Action.unknown(f"point the gateway at 10.1.0.20:80: {line}"))


@pytest.mark.parametrize(("values", "targets", "message"), [
    ({}, {}, "say which gateway this is: backend nginx, haproxy or openstack (or kind: in the "
             "target's gateway entry)"),
    ({"backend": "haproxy"}, {}, "the haproxy gateway needs config and upstream_file (as "
                                 "parameters or in the target's gateway entry)"),
    ({"target": "edge"}, {"edge": {"gateway": {"kind": "openstack"}}},
     "the openstack gateway needs pool and cloud (as parameters or in the target's gateway "
     "entry)"),
])
def test_missing_settings_are_explained(tmp_path: Any, values: dict[str, Any],
                                        targets: dict[str, Any], message: str) -> None:
    ctx = make_context(tmp_path, targets=targets)
    params = make_params(SwitchGateway, {"routers": ["10.1.0.20:80"], **values})
    with pytest.raises(StepFailed) as failed:
        SwitchGateway().observe(ctx, params)
    assert str(failed.value) == message
