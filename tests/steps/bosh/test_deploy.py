"""bosh.deploy: plan shows the diff against the source foundation and the dry-run task;
apply creates the parallel stack; revert deletes only what this run created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runbook.api import StepFailed
from runbook.testing import make_params
from steps.bosh.manifest import render_texts
from steps.bosh.step import DeployManifest

EXAMPLE = str(Path(__file__).resolve().parents[3] / "manifests" / "examples" / "cf.yml")


def params(director: Any, **values: Any) -> Any:
    base = {"target": "dest", "iaas": "openstack", "variables": EXAMPLE}
    return make_params(DeployManifest, {**base, **values}, environ=director.environ)


def seed_vcloud_source(source: Any) -> None:
    old = render_texts("vcloud", EXAMPLE)
    source.seed(old.manifest, old.cloud_config)


def test_plan_diffs_against_source_and_apply_creates_the_parallel_stack(
        director, source_director, make_ctx) -> None:
    seed_vcloud_source(source_director)
    ctx = make_ctx(dest=director, source=source_director)
    p = params(director, source="source")
    step = DeployManifest()
    facts = step.observe(ctx, p)
    plan = step.plan(p, facts)
    lines = [a.description for a in plan.actions]
    assert lines == [
        "render openstack manifest for 'cf': 8 instance groups, 14 instances (z1=7 z2=7)",
        f"bosh update-cloud-config ({len(facts['cloud_diff'])} changes)",
        "bosh -d cf deploy --dry-run: skipped until the cloud config is updated",
        "bosh -d cf deploy: create"]
    assert [a.mutates for a in plan.actions] == [False, True, False, True]
    assert plan.reason.startswith("differences from source source (cf): ")
    assert "  cloud config + vm_types[small].cloud_properties.instance_type: any-infr-small" \
        in plan.reason.splitlines()
    assert source_director.commands() == ["deployments", "manifest", "cloud-config"]
    assert director.commands() == ["deployments", "cloud-config"]  # nothing changed yet

    result = step.apply(ctx, p, plan)
    assert result.outputs["created"] is True and isinstance(result.outputs["task_id"], int)
    assert result.outputs["placement"]["cc_db"] != result.outputs["placement"]["uaa_db"]
    assert Path(result.outputs["manifest"]).is_file()
    assert result.record == {"deployment": "cf", "created": True,
                             "previous_cloud_config": None, "cloud_config_changed": True}
    assert len(director.sim.instances("cf")) == 14
    assert step.verify(ctx, p, result) is True

    again = step.observe(ctx, p)
    assert again["dry_run"]["ok"] is True  # cloud config now matches: the dry run ran
    assert step.plan(p, again).empty
    assert step.plan(p, again).reason == "deployment 'cf' already runs the rendered manifest"

    assert [a.description for a in step.revert_plan(p, result.record).actions] == [
        "bosh -d cf delete-deployment"]
    step.revert(ctx, p, result.record)
    assert director.sim.state()["deployments"] == {}
    step.revert(ctx, p, result.record)  # idempotent
    assert "delete-deployment" not in director.commands()[-1]


def test_update_of_existing_deployment_shows_changes_and_revert_keeps_it(
        director, make_ctx) -> None:
    new = render_texts("openstack", EXAMPLE)
    director.seed(new.manifest.replace("instances: 3", "instances: 2"), new.cloud_config)
    ctx = make_ctx(dest=director)
    p = params(director)
    step = DeployManifest()
    plan = step.plan(p, step.observe(ctx, p))
    lines = [a.description for a in plan.actions]
    assert lines[1].startswith("bosh -d cf deploy --dry-run: task ") and lines[1].endswith(" done")
    assert lines[2] == "bosh -d cf deploy: update (1 changes)"
    assert "  ~ instance_groups[router].instances: 2 -> 3" in plan.reason.splitlines()
    result = step.apply(ctx, p, plan)
    assert result.record["created"] is False
    assert len([i for i in director.sim.instances("cf") if i["group"] == "router"]) == 3
    assert step.revert_plan(p, result.record).empty
    step.revert(ctx, p, result.record)
    assert "cf" in director.sim.state()["deployments"]


def test_failing_deploy_task_surfaces_id_and_message_and_is_revertible(
        director, make_ctx) -> None:
    ctx = make_ctx(dest=director)
    director.sim.fail_next("deploy", "cf", "Unknown CPI error 'Unknown' with message "
                           "'quota exceeded for cores' in 'create_vm' CPI method")
    p = params(director)
    step = DeployManifest()
    with pytest.raises(StepFailed) as failed:
        step.apply(ctx, p, step.plan(p, step.observe(ctx, p)))
    task = director.sim.state()["next_task"] - 1
    message = str(failed.value)
    assert f"(director task {task})" in message
    assert ("Error: Unknown CPI error 'Unknown' with message 'quota exceeded for cores' in "
            "'create_vm' CPI method") in message
    assert f"Expected task '{task}' to succeed but state is 'error'" in message
    assert failed.value.record is not None and failed.value.record["created"] is True
    assert director.secret not in message


def test_dry_run_failure_is_shown_in_the_plan(director, make_ctx) -> None:
    new = render_texts("openstack", EXAMPLE)
    director.seed(new.manifest, new.cloud_config)
    ctx = make_ctx(dest=director)
    p = params(director, vars={"instance_groups": [
        {"name": "api", "instances": 1, "vm_type": "huge", "jobs": []}]})
    step = DeployManifest()
    plan = step.plan(p, step.observe(ctx, p))
    dry = plan.actions[1].description
    assert dry.startswith("bosh -d cf deploy --dry-run FAILED: bosh -d cf deploy ")
    assert "Instance group 'api' references an unknown vm type 'huge'" in dry
    assert "cf" in director.sim.state()["deployments"]
    assert len(director.sim.instances("cf")) == 14  # the dry run changed nothing


def test_wrong_secret_and_missing_cli_fail_clearly(director, make_ctx, tmp_path) -> None:
    ctx = make_ctx(dest=director)
    ctx.targets["dest"]["bosh"]["client"] = "intruder"
    with pytest.raises(StepFailed) as failed:
        DeployManifest().observe(ctx, params(director))
    assert "Director responded with non-successful status code '401'" in str(failed.value)
    assert director.secret not in str(failed.value)
    ctx = make_ctx(dest=director)
    with pytest.raises(StepFailed, match="the bosh CLI '.*nowhere/bosh' was not found; "
                                         "install bosh-cli v2 or set 'cli'"):
        DeployManifest().observe(ctx, params(director, cli=str(tmp_path / "nowhere" / "bosh")))


def test_outputs_and_record_hold_no_secret(director, make_ctx) -> None:
    ctx = make_ctx(dest=director)
    p = params(director)
    step = DeployManifest()
    result = step.apply(ctx, p, step.plan(p, step.observe(ctx, p)))
    blob = json.dumps([result.outputs, result.record, ctx.checkpoints])
    assert director.secret not in blob
    logs = "".join(f.read_text() for f in ctx.log_dir.iterdir())
    assert "deploy" in logs and director.secret not in logs


def test_revert_restores_the_cloud_config_it_replaced(director, make_ctx) -> None:
    with director.sim.edit() as state:
        state["cloud_config"] = "azs: [{name: z1}]\n"
    ctx = make_ctx(dest=director)
    p = params(director)
    step = DeployManifest()
    result = step.apply(ctx, p, step.plan(p, step.observe(ctx, p)))
    assert "nova-a" in director.sim.state()["cloud_config"]
    assert [a.description for a in step.revert_plan(p, result.record).actions] == [
        "bosh -d cf delete-deployment", "bosh update-cloud-config (the previous one)"]
    step.revert(ctx, p, result.record)
    assert director.sim.state()["cloud_config"] == "azs: [{name: z1}]\n"
    assert director.sim.state()["deployments"] == {}


def test_a_hanging_bosh_command_is_killed_at_the_command_timeout(director, make_ctx) -> None:
    from runbook.api import StepTimedOut
    from steps.bosh.step import StopInstances

    director.seed()
    with director.sim.edit() as state:
        state["director"]["task_seconds"] = 30
    ctx = make_ctx(dest=director)
    p = make_params(StopInstances, {"target": "dest", "instance_groups": ["cc_db"],
                                    "resurrection": "untouched", "command_timeout": "1s"},
                    environ=director.environ)
    step = StopInstances()
    plan = step.plan(p, step.observe(ctx, p))
    with pytest.raises(StepTimedOut, match="ran past its timeout of 1s and was killed"):
        step.apply(ctx, p, plan)
    assert ctx.checkpoints[-1]["items"][0]["group"] == "cc_db"  # revert knows what to undo
