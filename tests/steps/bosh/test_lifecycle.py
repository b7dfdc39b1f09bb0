"""bosh.stop / bosh.start against the simulated director: order, resurrection, verify,
idempotence, and revert after a partial stop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runbook.api import StepFailed
from runbook.testing import make_params
from steps.bosh.step import StartInstances, StopInstances

DATA = ["cc_db", "uaa_db", "nfs_server"]


def params(cls: type, director: Any, **values: Any) -> Any:
    return make_params(cls, {"target": "dest", **values}, environ=director.environ)


def run(step: Any, ctx: Any, p: Any) -> Any:
    plan = step.plan(p, step.observe(ctx, p))
    return plan, step.apply(ctx, p, plan)


def test_stop_runs_health_manager_first_then_declared_order(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    p = params(StopInstances, director, instance_groups=DATA, health_manager="hm9000")
    plan, result = run(StopInstances(), ctx, p)
    assert [a.description for a in plan.actions] == [
        "bosh update-resurrection off",
        "bosh -d cf stop hm9000 --soft (2 instances)",
        "bosh -d cf stop cc_db --soft (1 instance)",
        "bosh -d cf stop uaa_db --soft (1 instance)",
        "bosh -d cf stop nfs_server --soft (1 instance)",
        "bosh update-resurrection on"]
    changes = [c for c in director.commands() if not c.startswith("instances")]
    assert changes == ["update-resurrection off", "stop hm9000 --soft", "stop cc_db --soft",
                       "stop uaa_db --soft", "stop nfs_server --soft", "update-resurrection on"]
    assert result.outputs["groups"] == ["hm9000", *DATA]
    assert result.outputs["instances"] == 5
    assert all(isinstance(t, int) for t in result.outputs["task_ids"])
    states = director.states()
    assert states["cc_db"] == {"stopped"} and states["api"] == {"started"}
    assert StopInstances().verify(ctx, p, result) is True
    assert director.sim.state()["director"]["resurrection"] is True


def test_stop_twice_is_unchanged_and_changes_nothing(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    p = params(StopInstances, director, instance_groups=DATA)
    run(StopInstances(), ctx, p)
    before = len(director.commands())
    plan, result = run(StopInstances(), ctx, p)
    assert plan.empty and plan.reason == ("all instances of cc_db, uaa_db, nfs_server in 'cf' "
                                          "are already stopped")
    assert result.changed is False
    assert [c for c in director.commands()[before:] if not c.startswith("instances")] == []


def test_resurrection_off_is_left_off_and_hard_stop_deletes_vms(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    p = params(StopInstances, director, instance_groups=["cc_db"], mode="hard",
               resurrection="off")
    run(StopInstances(), ctx, p)
    assert director.sim.state()["director"]["resurrection"] is False
    (db,) = [i for i in director.sim.instances("cf") if i["group"] == "cc_db"]
    assert db["state"] == "detached" and db["vm_cid"] == "" and db["disks"]
    assert StopInstances().verify(ctx, p, None) is True


def test_revert_after_partial_stop_restarts_exactly_what_was_stopped(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    # nats was stopped before this run: the rollback must leave it stopped.
    director.sim.run(["-d", "cf", "stop", "nats"], {"BOSH_ENVIRONMENT": "x",
                                                   "BOSH_CLIENT": "admin",
                                                   "BOSH_CLIENT_SECRET": director.secret})
    director.sim.fail_next("stop", "uaa_db", "Action Failed get_task: Task 0c1d timed out")
    p = params(StopInstances, director, instance_groups=["nats", *DATA], health_manager="hm9000")
    step = StopInstances()
    plan = step.plan(p, step.observe(ctx, p))
    with pytest.raises(StepFailed) as failed:
        step.apply(ctx, p, plan)
    message = str(failed.value)
    assert "Action Failed get_task: Task 0c1d timed out" in message
    assert "stopped so far: hm9000, cc_db" in message
    record = failed.value.record
    assert record is not None and ctx.checkpoints[-1] == record
    assert [i["group"] for i in record["items"]] == ["hm9000", "cc_db", "uaa_db"]
    assert director.states()["nfs_server"] == {"started"}  # never reached

    mark = len(director.commands())
    assert [a.description for a in step.revert_plan(p, record).actions] == [
        "bosh -d cf start uaa_db", "bosh -d cf start cc_db", "bosh -d cf start hm9000"]
    step.revert(ctx, p, record)
    assert director.commands()[mark:] == ["update-resurrection off", "start uaa_db",
                                          "start cc_db", "start hm9000",
                                          "update-resurrection on"]
    states = director.states()
    assert states["nats"] == {"stopped"}
    assert all(states[g] == {"started"} for g in ("hm9000", "cc_db", "uaa_db", "nfs_server"))
    step.revert(ctx, p, record)  # idempotent: starting running instances changes nothing
    assert director.states() == states


def test_partial_group_is_stopped_and_restarted_per_instance(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    first, second = [i["id"] for i in director.sim.instances("cf") if i["group"] == "api"]
    env = {"BOSH_ENVIRONMENT": "x", "BOSH_CLIENT": "admin", "BOSH_CLIENT_SECRET": director.secret}
    director.sim.run(["-d", "cf", "stop", f"api/{first}"], env)
    p = params(StopInstances, director, instance_groups=["api"], resurrection="untouched")
    plan, result = run(StopInstances(), ctx, p)
    assert [a.description for a in plan.actions] == [f"bosh -d cf stop api/{second} --soft "
                                                     "(1 instance)"]
    StopInstances().revert(ctx, p, result.record)
    after = {i["id"]: i["state"] for i in director.sim.instances("cf") if i["group"] == "api"}
    assert after == {first: "stopped", second: "started"}


def test_start_runs_health_manager_last_and_revert_stops_the_same_way(director,
                                                                      make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    run(StopInstances(), ctx, params(StopInstances, director, instance_groups=["cc_db"],
                                     mode="hard"))
    run(StopInstances(), ctx, params(StopInstances, director, health_manager="hm9000"))
    mark = len(director.commands())
    p = params(StartInstances, director, instance_groups=["cc_db", "api"],
               health_manager="hm9000")
    plan, result = run(StartInstances(), ctx, p)
    # api was running: only cc_db and then the health manager are started.
    assert [c for c in director.commands()[mark:] if not c.startswith("instances")] == [
        "update-resurrection off", "start cc_db", "start hm9000", "update-resurrection on"]
    assert StartInstances().verify(ctx, p, result) is True
    assert [a.description for a in StartInstances().revert_plan(p, result.record).actions] == [
        "bosh -d cf stop hm9000 --soft", "bosh -d cf stop cc_db --hard"]
    StartInstances().revert(ctx, p, result.record)
    states = director.states()
    assert states["cc_db"] == {"detached"} and states["hm9000"] == {"stopped"}
    assert states["api"] == {"started"}


def test_diego_era_maps_health_manager_to_scheduler_and_diego_api(director, make_ctx) -> None:
    manifest = director.cf_manifest.replace("name: hm9000, instances: 2", "name: scheduler, "
                                            "instances: 2").replace(
        "{name: hm9000}", "{name: cloud_controller_clock}")
    manifest += ("- {name: diego-api, instances: 2, azs: [z1, z2], vm_type: small, "
                 "networks: [{name: default}], jobs: [{name: bbs}]}\n")
    director.seed(manifest)
    ctx = make_ctx(dest=director)
    p = params(StopInstances, director, instance_groups=["cc_db"], health_manager="diego")
    plan, _ = run(StopInstances(), ctx, p)
    assert [a.description.split(" (")[0] for a in plan.actions[1:4]] == [
        "bosh -d cf stop scheduler --soft", "bosh -d cf stop diego-api --soft",
        "bosh -d cf stop cc_db --soft"]


def test_unknown_group_and_missing_health_manager_fail_before_any_change(director,
                                                                          make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    with pytest.raises(StepFailed, match=r"instance group\(s\) mysql not found in deployment "
                                         r"'cf' \(it has: nats, hm9000, cc_db"):
        StopInstances().observe(ctx, params(StopInstances, director, instance_groups=["mysql"]))
    with pytest.raises(StepFailed, match="health_manager 'diego': no such instance group"):
        StopInstances().observe(ctx, params(StopInstances, director, health_manager="diego"))
    assert all(c.startswith("instances") for c in director.commands())


def test_plan_without_facts_lists_the_declared_order(director) -> None:
    p = params(StopInstances, director, instance_groups=DATA, health_manager="diego")
    lines = [a.description for a in StopInstances().plan(p, None).actions]
    assert lines[1:4] == ["bosh -d <dest's deployment> stop scheduler --soft",
                          "bosh -d <dest's deployment> stop diego-api --soft",
                          "bosh -d <dest's deployment> stop cc_db --soft"]
    start = [a.description for a in StartInstances().plan(
        params(StartInstances, director, instance_groups=DATA, health_manager="diego"),
        None).actions]
    assert start[-3:] == ["bosh -d <dest's deployment> start scheduler",
                          "bosh -d <dest's deployment> start diego-api",
                          "bosh update-resurrection on"]


def test_no_secret_in_outputs_records_or_logs(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    _, result = run(StopInstances(), ctx, params(StopInstances, director, instance_groups=DATA))
    assert director.secret not in json.dumps([result.outputs, result.record, ctx.checkpoints])
    logs = "".join(p.read_text() for p in ctx.log_dir.iterdir())
    assert "stop cc_db" in logs and director.secret not in logs


def test_verify_reads_process_states(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    p = params(StopInstances, director, instance_groups=DATA)
    _, result = run(StopInstances(), ctx, p)
    assert StopInstances().verify(ctx, p, result) is True
    env = {"BOSH_ENVIRONMENT": "x", "BOSH_CLIENT": "admin", "BOSH_CLIENT_SECRET": director.secret}
    director.sim.run(["-d", "cf", "start", "uaa_db"], env)  # someone started it again
    assert StopInstances().verify(ctx, p, result) is False
    start = params(StartInstances, director, instance_groups=DATA)
    assert StartInstances().verify(ctx, start, None) is False
