"""gateway.switch with an OpenStack LBaaS pool: the real openstacksdk against the lab's
Octavia fake (runbook.lab.openstack_fake), so the SDK builds every request itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.api import StepFailed
from runbook.testing import make_context, make_params
from steps.gateway.step import SwitchGateway

openstack = pytest.importorskip("openstack", reason="needs paas-runbook[openstack]")

from runbook.lab.openstack_fake import OpenStackFake


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenStackFake]:
    with OpenStackFake(password="pool-admin-pw") as fake:
        path = fake.write_clouds_yaml(tmp_path / "clouds.yaml", "old-cloud")
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
        lb = fake.add("loadbalancers", name="cf-gateway")
        pool = fake.add("pools", name="cf-routers", loadbalancer_id=lb["id"])
        for address in ("10.0.0.20", "10.0.0.21"):
            fake.add("members", pool_id=pool["id"], address=address, protocol_port=80,
                     name=f"old-{address}")
        yield fake


def _members(fake: OpenStackFake) -> list[tuple[str, int]]:
    return sorted((m["address"], m["protocol_port"]) for m in fake.store["members"].values())


def test_pool_switch_adds_before_removing_and_reverts(cloud: OpenStackFake,
                                                      tmp_path: Path) -> None:
    ctx = make_context(tmp_path, targets={"source": {"openstack": {"cloud": "old-cloud"},
                                                     "gateway": {"kind": "openstack",
                                                                 "pool": "cf-routers"}}})
    params = make_params(SwitchGateway, {"target": "source",
                                         "routers": ["10.1.0.20", "10.1.0.21:8080"]})
    step = SwitchGateway()
    plan = step.plan(params, step.observe(ctx, params))
    assert [a.description for a in plan.actions] == [
        "add 10.1.0.20:80 to LBaaS pool cf-routers",
        "add 10.1.0.21:8080 to LBaaS pool cf-routers",
        "remove 10.0.0.20:80 from LBaaS pool cf-routers",
        "remove 10.0.0.21:80 from LBaaS pool cf-routers"]
    cloud.requests.clear()
    result = step.apply(ctx, params, plan)

    assert _members(cloud) == [("10.1.0.20", 80), ("10.1.0.21", 8080)]
    changes = [m for m, p in cloud.requests if m in ("POST", "DELETE") and "/members" in p]
    assert changes == ["POST", "POST", "DELETE", "DELETE"]  # the pool is never empty
    assert result.outputs["previous_routers"] == ["10.0.0.20:80", "10.0.0.21:80"]
    assert len(ctx.checkpoints) == 4 and ctx.checkpoints[-1] == result.record
    assert step.verify(ctx, params, result) is True
    assert step.plan(params, step.observe(ctx, params)).empty
    assert "pool-admin-pw" not in json.dumps([result.outputs, result.record])

    assert [a.description for a in step.revert_plan(params, result.record).actions] == [
        "add back 10.0.0.20:80", "add back 10.0.0.21:80",
        "remove 10.1.0.20:80", "remove 10.1.0.21:8080"]
    step.revert(ctx, params, result.record)
    step.revert(ctx, params, result.record)  # idempotent
    assert _members(cloud) == [("10.0.0.20", 80), ("10.0.0.21", 80)]
    assert step.verify(ctx, params, result) is False


def test_unknown_pool_is_a_clear_error(cloud: OpenStackFake, tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    params = make_params(SwitchGateway, {"backend": "openstack", "cloud": "old-cloud",
                                         "pool": "no-such-pool", "routers": ["10.1.0.20"]})
    with pytest.raises(StepFailed) as failed:
        SwitchGateway().observe(ctx, params)
    message = str(failed.value)
    assert message.startswith("cannot reach load balancer pool 'no-such-pool' in cloud "
                              "'old-cloud': ")
    assert message.endswith("; check clouds.yaml and the pool name")
    assert "pool-admin-pw" not in message
