"""openstack.export and openstack.import through the real openstacksdk against the fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.api import StepFailed
from runbook.testing import make_params
from steps.openstack.step import ExportResources, ImportResources


def run(step: Any, ctx: Any, params: Any) -> Any:
    plan = step.plan(params, step.observe(ctx, params))
    return plan, step.apply(ctx, params, plan)


def export(clouds: Any, **extra: Any) -> Path:
    path = clouds.tmp / "resources.yml"
    params = make_params(ExportResources, {"target": "source", "path": str(path), **extra})
    run(ExportResources(), clouds.context(), params)
    return path


def import_params(path: Path, **extra: Any) -> Any:
    return make_params(ImportResources, {"target": "destination", "path": str(path), **extra})


def counts(cloud: Any) -> dict[str, int]:
    return {k: len(cloud.find(k)) for k in ("networks", "subnets", "routers", "ports",
                                            "security-groups", "security-group-rules")}


def test_export_writes_an_editable_file_with_names_not_ids(clouds: Any, layout: Any) -> None:
    doc = yaml.safe_load(export(clouds).read_text())
    assert [n["name"] for n in doc["networks"]] == ["cf"]  # not the provider network
    assert {s["name"]: s["network"] for s in doc["subnets"]} == {"cf-z1": "cf", "cf-z2": "cf"}
    assert doc["routers"][0]["external_network"] == "public"
    assert doc["routers"][0]["interfaces"] == ["cf-z1", "cf-z2"]
    bosh = next(g for g in doc["security_groups"] if g["name"] == "cf-bosh")
    assert {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 6868, "port_range_max": 6868, "remote_ip_prefix": None,
            "remote_group": "cf-bosh", "description": ""} in bosh["rules"]
    assert layout["cf"] not in json.dumps(doc)


def test_export_again_is_unchanged_and_revert_restores_the_previous_file(
        clouds: Any, layout: Any) -> None:
    path = clouds.tmp / "resources.yml"
    path.write_text("# hand-written\n")
    params = make_params(ExportResources, {"target": "source", "path": str(path)})
    step, ctx = ExportResources(), clouds.context()
    _, result = run(step, ctx, params)
    assert result.outputs["subnets"] == 2
    assert step.plan(params, step.observe(ctx, params)).mutation == "unchanged"
    step.revert(ctx, params, result.record)
    assert path.read_text() == "# hand-written\n"


def test_import_creates_everything_then_is_unchanged_and_revert_removes_it(
        clouds: Any, layout: Any) -> None:
    path = export(clouds)
    before = counts(clouds.dst)
    step, ctx, params = ImportResources(), clouds.context(), import_params(path)
    plan, result = run(step, ctx, params)
    assert [a.description for a in plan.actions[:3]] == [
        "create network 'cf'", "create subnet 'cf-z1' in network 'cf' (10.0.16.0/24)",
        "create subnet 'cf-z2' in network 'cf' (10.0.32.0/24)"]
    assert plan.actions[-1].description == "attach subnet 'cf-z2' to router 'cf-router'"
    # Both projects have Neutron's own "default" group: it matches and stays untouched.
    assert (result.outputs["created"], result.outputs["unchanged"]) == (6, 1)
    assert (result.outputs["rules_added"], result.outputs["interfaces_added"]) == (3, 2)
    router = clouds.dst.find("routers", name="cf-router")[0]
    public = clouds.dst.find("networks", name="public")[0]
    assert router["external_gateway_info"]["network_id"] == public["id"]
    assert len(clouds.dst.find("ports", device_id=router["id"])) == 2
    bosh = clouds.dst.find("security-groups", name="cf-bosh")[0]
    assert {(r["port_range_min"], r["remote_group_id"]) for r in bosh["security_group_rules"]
            if r["direction"] == "ingress"} == {(22, None), (6868, bosh["id"])}
    assert clouds.dst.find("networks", name="cf")[0]["mtu"] == 1400
    assert step.verify(ctx, params, result) is True

    again = step.plan(params, step.observe(ctx, params))
    assert again.mutation == "unchanged"
    assert again.reason == f"all 7 selected resources already match {path}"

    step.revert(ctx, params, result.record)
    assert counts(clouds.dst) == before
    step.revert(ctx, params, result.record)  # a second revert finds nothing to do
    assert counts(clouds.dst) == before


def test_existing_equal_resources_are_unchanged_and_survive_revert(
        clouds: Any, layout: Any) -> None:
    path = export(clouds)
    dst = clouds.sdk(clouds.dst).network
    web = dst.create_security_group(name="cf-web", description="gorouters")
    dst.create_security_group_rule(security_group_id=web.id, direction="ingress",
                                   protocol="tcp", port_range_min=80, port_range_max=80,
                                   remote_ip_prefix="0.0.0.0/0")
    step, ctx, params = ImportResources(), clouds.context(), import_params(path)
    _, result = run(step, ctx, params)
    web_row = next(r for r in result.outputs["resources"] if r["name"] == "cf-web")
    assert web_row == {"kind": "security group", "name": "cf-web", "id": web.id,
                       "result": "unchanged"}
    step.revert(ctx, params, result.record)
    assert [g["name"] for g in clouds.dst.find("security-groups")] == ["default", "cf-web"]
    assert len(clouds.dst.find("security-group-rules", security_group_id=web.id)) == 3


def test_an_edited_value_updates_the_existing_resource_and_revert_puts_it_back(
        clouds: Any, layout: Any) -> None:
    path = export(clouds)
    doc = yaml.safe_load(path.read_text())
    doc["networks"][0]["mtu"] = 1450  # the operator edits the file for the new cloud
    path.write_text(yaml.safe_dump(doc))
    clouds.sdk(clouds.dst).network.create_network(name="cf", mtu=1500)
    step, ctx, params = ImportResources(), clouds.context(), import_params(
        path, kinds=["networks"])
    plan, result = run(step, ctx, params)
    assert [a.description for a in plan.actions] == ["update network 'cf': mtu 1500 -> 1450"]
    assert clouds.dst.find("networks", name="cf")[0]["mtu"] == 1450
    step.revert(ctx, params, result.record)
    assert clouds.dst.find("networks", name="cf")[0]["mtu"] == 1500


def test_a_missing_dependency_fails_by_name_before_any_change(
        clouds: Any, layout: Any) -> None:
    path = export(clouds)
    before = counts(clouds.dst)
    step, ctx = ImportResources(), clouds.context()
    params = import_params(path, kinds=["subnets"], include=["cf-z1"])
    with pytest.raises(StepFailed) as caught:
        step.plan(params, step.observe(ctx, params))
    assert str(caught.value) == (
        "subnet 'cf-z1' needs network 'cf', which is neither on the destination cloud nor "
        "imported by this step (it is in the file but excluded by the filters); import it "
        "first or fix the reference in the resource file")
    with pytest.raises(StepFailed):
        step.apply(ctx, params, step.plan(import_params(path), None))
    assert counts(clouds.dst) == before


def test_name_filters_select_what_is_imported(clouds: Any, layout: Any) -> None:
    path = export(clouds)
    step, ctx = ImportResources(), clouds.context()
    params = import_params(path, kinds=["security_groups"], exclude=["*-bosh"])
    _plan, result = run(step, ctx, params)
    assert [g["name"] for g in clouds.dst.find("security-groups")] == ["default", "cf-web"]
    assert result.outputs["created"] == 1
    assert clouds.dst.find("networks", name="cf") == []


def test_same_names_in_other_projects_are_not_matched(clouds: Any, layout: Any) -> None:
    # An admin account sees every project's resources; matching stays within the project.
    clouds.dst.add("networks", name="cf", project_id="someone-else")
    clouds.dst.add("security-groups", name="cf-web", project_id="someone-else")
    path = export(clouds)
    _, result = run(ImportResources(), clouds.context(), import_params(path))
    assert (result.outputs["created"], result.outputs["unchanged"]) == (6, 1)
    assert len(clouds.dst.find("networks", name="cf", project_id=clouds.dst.project_id)) == 1


def test_a_failure_midway_leaves_a_record_that_revert_undoes(
        clouds: Any, layout: Any) -> None:
    path = export(clouds)
    before = counts(clouds.dst)
    clouds.dst.fail_next("POST", "/routers")
    step, ctx, params = ImportResources(), clouds.context(), import_params(path)
    plan = step.plan(params, step.observe(ctx, params))
    with pytest.raises(StepFailed) as caught:
        step.apply(ctx, params, plan)
    message = str(caught.value)
    assert message == ("cloud 'new' failed to create router cf-router: Request Failed: "
                       "internal server error ""(8 change(s) made before this; revert undoes them)")
    record = caught.value.record
    assert record == ctx.checkpoints[-1]  # type: ignore[attr-defined]
    assert [e["kind"] for e in record["done"]] == [
        "network", "subnet", "subnet", "security group", "security group rule",
        "security group rule", "security group", "security group rule"]
    step.revert(ctx, params, record)
    assert counts(clouds.dst) == before


def test_bad_credentials_fail_clearly_without_the_password(clouds: Any) -> None:
    clouds.dst.password = "rotated-password"
    step, ctx, params = ImportResources(), clouds.context(), import_params(clouds.tmp / "x")
    (clouds.tmp / "x").write_text("format: paas-runbook/openstack-resources/v1\n")
    with pytest.raises(StepFailed) as caught:
        step.observe(ctx, params)
    assert str(caught.value) == (
        "cloud 'new' refused the credentials while trying to connect; check the user, "
        "password and project in its clouds.yaml entry")


def test_explicit_auth_with_a_secret_reference_leaks_nothing(clouds: Any,
                                                            layout: Any) -> None:
    path = export(clouds)
    config = clouds.dst.cloud_config()
    config["auth"]["password"] = "${env:DEST_OS_PASSWORD}"
    clouds.targets["destination"] = {"openstack": {"auth": config["auth"],
                                                   "region_name": "RegionOne"}}
    ctx = clouds.context(environ={"DEST_OS_PASSWORD": clouds.dst.password})
    step, params = ImportResources(), import_params(path)
    plan, result = run(step, ctx, params)
    assert result.outputs["created"] == 6
    dumped = json.dumps([result.outputs, result.record, plan.to_dict()])
    assert clouds.dst.password not in dumped


def test_an_unreachable_cloud_is_a_clear_failure(clouds: Any) -> None:
    url = clouds.dst.url
    clouds.dst.stop()
    (clouds.tmp / "x").write_text("format: paas-runbook/openstack-resources/v1\n")
    with pytest.raises(StepFailed) as caught:
        ImportResources().observe(clouds.context(), import_params(clouds.tmp / "x"))
    assert str(caught.value) == (
        "cloud 'new' cannot be reached while trying to connect: no identity service "
        "answered at its auth_url; check auth_url and the network path")
    assert url  # the port was real before the stop


def test_a_file_an_earlier_step_will_write_is_planned_but_required_to_apply(
        clouds: Any) -> None:
    path = clouds.tmp / "later.yml"
    step, ctx, params = ImportResources(), clouds.context(), import_params(path)
    plan = step.plan(params, step.observe(ctx, params))
    assert plan.mutation == "undetermined"
    assert plan.actions[0].description.endswith(f"({path} does not exist yet)")
    with pytest.raises(StepFailed) as caught:
        step.apply(ctx, params, plan)
    assert str(caught.value) == (f"resource file {path} does not exist; write it with "
                                 "openstack.export first")


def test_the_lab_layout_moves_to_an_empty_cloud_and_then_matches(clouds: Any) -> None:
    ids = clouds.src.seed_network_layout()
    path = export(clouds)
    step, ctx, params = ImportResources(), clouds.context(), import_params(path)
    _, result = run(step, ctx, params)
    assert result.outputs["created"] == 6
    created = {r["name"] for r in result.outputs["resources"] if r["result"] == "created"}
    assert created == set(ids)
    assert step.plan(params, step.observe(ctx, params)).mutation == "unchanged"


def test_the_registry_finds_the_step_types_and_validates_with() -> None:
    from runbook.params import ParamErrors, build
    from runbook.registry import Registry

    registry = Registry()
    classes = {name: registry.load(name).__name__ for name in
               ("openstack.export", "openstack.import", "openstack.import_volume")}
    assert classes == {"openstack.export": "ExportResources",
                       "openstack.import": "ImportResources",
                       "openstack.import_volume": "ImportVolume"}
    volume = registry.load("openstack.import_volume")
    build(volume.Params, {"target": "destination", "file": "{{ steps.dump.outputs.path }}",
                          "volume_name": "blobstore", "timeout": "20m"}, lenient=True)
    with pytest.raises(ParamErrors) as caught:
        build(volume.Params, {"target": "d", "file": "x", "volume_name": "v",
                              "disk_format": "qcow3"})
    assert caught.value.message == "must be 'qcow2' or 'raw' or 'vmdk', got 'qcow3'"


def test_references_to_filtered_out_resources_keep_their_names(clouds: Any,
                                                               layout: Any) -> None:
    doc = yaml.safe_load(export(clouds, kinds=["subnets", "security_groups"],
                                exclude=["cf-bosh", "def*"]).read_text())
    assert doc["networks"] == [] and [g["name"] for g in doc["security_groups"]] == ["cf-web"]
    assert {s["network"] for s in doc["subnets"]} == {"cf"}


def test_a_rule_added_to_an_existing_group_is_all_that_revert_removes(
        clouds: Any, layout: Any) -> None:
    path = export(clouds)
    dst = clouds.sdk(clouds.dst).network
    bosh = dst.create_security_group(name="cf-bosh", description="director")
    ssh = dst.create_security_group_rule(security_group_id=bosh.id, direction="ingress",
                                         protocol="tcp", port_range_min=22,
                                         port_range_max=22, remote_ip_prefix="10.0.0.0/8")
    step, ctx = ImportResources(), clouds.context()
    params = import_params(path, kinds=["security_groups"], include=["cf-bosh"])
    plan, result = run(step, ctx, params)
    assert [a.description for a in plan.actions] == [
        "add rule to security group 'cf-bosh': ingress IPv4 tcp 6868 from group 'cf-bosh'"]
    assert result.outputs["unchanged"] == 1
    step.revert(ctx, params, result.record)
    left = {r["id"] for r in clouds.dst.find("security-group-rules", security_group_id=bosh.id)}
    assert ssh.id in left and len(left) == 3  # ssh plus Neutron's two egress rules
