"""bosh.instances snapshots; bosh.attach_disk only onto a stopped instance, undone exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runbook.api import StepFailed
from runbook.testing import make_params
from steps.bosh.step import AttachDisk, ListInstances, StopInstances


def params(cls: type, director: Any, **values: Any) -> Any:
    return make_params(cls, {"target": "dest", **values}, environ=director.environ)


def cc_db(director: Any) -> dict[str, Any]:
    (inst,) = [i for i in director.sim.instances("cf") if i["group"] == "cc_db"]
    return inst


def test_snapshot_has_instances_ips_processes_and_disks(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    p = params(ListInstances, director, instance_groups=["cc_db", "nats"])
    step = ListInstances()
    plan = step.plan(p, None)
    assert plan.mutation == "read-only"
    result = step.apply(ctx, p, plan)
    out = result.outputs
    assert result.changed is False and out["deployment"] == "cf" and out["count"] == 3
    db = cc_db(director)
    assert out["ips"]["cc_db"] == db["ips"] and out["disks"]["cc_db"] == db["disks"]
    assert len(out["ips"]["nats"]) == 2 and out["disks"]["nats"] == []
    first = next(i for i in out["instances"] if i["group"] == "cc_db")
    assert first["processes"] == [{"name": "postgres", "state": "running"}]
    assert first["state"] == "started" and first["id"] == db["id"]
    assert json.loads(Path(out["artifact"]).read_text())["count"] == 3


def test_attach_disk_refuses_a_running_instance_without_change(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    db = cc_db(director)
    p = params(AttachDisk, director, instance="cc_db/0", disk_cid="vol-imported-1")
    step = AttachDisk()
    plan = step.plan(p, step.observe(ctx, p))
    assert plan.reason.startswith(f"cc_db/{db['id']} is not stopped: run bosh.stop on it first")
    with pytest.raises(StepFailed, match=f"cc_db/{db['id']} is started; BOSH attaches a disk "
                                         "only to a stopped instance"):
        step.apply(ctx, p, plan)
    assert cc_db(director)["disks"] == db["disks"]
    assert not any(c.startswith("attach-disk") for c in director.commands())


def test_attach_disk_on_stopped_instance_and_revert_reattaches_previous(director,
                                                                       make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    old_disk = cc_db(director)["disks"][0]
    StopInstances().apply(ctx, params(StopInstances, director, instance_groups=["cc_db"]),
                          None)  # type: ignore[arg-type]
    p = params(AttachDisk, director, instance=f"cc_db/{cc_db(director)['id']}",
               disk_cid="vol-imported-1")
    step = AttachDisk()
    plan = step.plan(p, step.observe(ctx, p))
    assert [a.description for a in plan.actions] == [
        f"bosh -d <dest's deployment> attach-disk cc_db/{cc_db(director)['id']} vol-imported-1"]
    result = step.apply(ctx, p, plan)
    assert cc_db(director)["disks"] == ["vol-imported-1"]
    assert [d["cid"] for d in director.sim.state()["orphaned_disks"]] == [old_disk]
    assert result.outputs["previous_disk_cids"] == [old_disk]
    assert step.verify(ctx, p, result) is True
    assert step.plan(p, step.observe(ctx, p)).empty  # already attached

    step.revert(ctx, p, result.record)
    assert cc_db(director)["disks"] == [old_disk]
    assert director.sim.state()["orphaned_disks"][0]["cid"] == "vol-imported-1"
    mark = len(director.commands())
    step.revert(ctx, p, result.record)  # idempotent: nothing more attached
    assert not any(c.startswith("attach-disk") for c in director.commands()[mark:])


def test_unknown_instance_is_a_clear_error(director, make_ctx) -> None:
    director.seed()
    ctx = make_ctx(dest=director)
    with pytest.raises(StepFailed, match="instance 'cc_db/7' not found in deployment 'cf'"):
        AttachDisk().observe(ctx, params(AttachDisk, director, instance="cc_db/7",
                                         disk_cid="vol-1"))
    with pytest.raises(StepFailed, match="must be written GROUP/ID or GROUP/INDEX"):
        AttachDisk().observe(ctx, params(AttachDisk, director, instance="cc_db",
                                         disk_cid="vol-1"))
