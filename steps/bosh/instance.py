"""``bosh.instances`` (a snapshot) and ``bosh.attach_disk`` (onto a stopped instance)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runbook.api import Action, Plan, Result, Step, StepContext, StepFailed, param
from steps.bosh.client import BoshCli, BoshError, Instance
from steps.bosh.common import BoshParams, deployment_name, director


@dataclass(frozen=True, kw_only=True)
class ListParams(BoshParams):
    instance_groups: list[str] | None = param(None, doc="only these groups (default: all)")


class ListInstances(Step[ListParams]):
    """Snapshot ``bosh instances --ps --details``: instances, IPs, processes, disks.

    Reads target keys ``bosh.*`` (see :mod:`steps.bosh.common`). Outputs ``deployment``,
    ``count``, ``instances`` (list of {group, id, index, az, ips, process_state, state,
    vm_cid, vm_type, disk_cids, bootstrap, processes}), ``ips`` (group -> addresses),
    ``disks`` (group -> persistent disk CIDs) and ``artifact`` (the JSON file written).
    """

    Params = ListParams
    idempotent = True
    outputs = ("deployment", "count", "instances", "ips", "disks", "artifact")

    def plan(self, params: ListParams, facts: dict[str, Any] | None) -> Plan:
        dep = deployment_name(params)
        return Plan.of(Action.read(f"bosh -d {dep} instances --ps --details"))

    def apply(self, ctx: StepContext, params: ListParams, plan: Plan) -> Result:
        bosh = director(ctx, params)
        try:
            found = bosh.instances()
        except BoshError as exc:
            raise StepFailed(str(exc)) from None
        wanted = params.instance_groups
        chosen = [i for i in found if wanted is None or i.group in wanted]
        if wanted:
            missing = sorted(set(wanted) - {i.group for i in found})
            if missing:
                raise StepFailed(f"instance group(s) {', '.join(missing)} not found in "
                                 f"deployment '{bosh.settings.deployment}'")
        outputs = snapshot(bosh.settings.deployment, chosen)
        path = ctx.artifact_dir / f"{ctx.safe_step_id}-instances.json"
        path.write_text(json.dumps(outputs, indent=2))
        outputs["artifact"] = str(path)
        return Result(outputs=outputs, changed=False)


def snapshot(deployment: str, instances: list[Instance]) -> dict[str, Any]:
    ips: dict[str, list[str]] = {}
    disks: dict[str, list[str]] = {}
    for inst in instances:
        ips.setdefault(inst.group, []).extend(inst.ips)
        disks.setdefault(inst.group, []).extend(inst.disk_cids)
    return {"deployment": deployment, "count": len(instances),
            "instances": [i.to_json() for i in instances], "ips": ips, "disks": disks}


@dataclass(frozen=True, kw_only=True)
class AttachParams(BoshParams):
    instance: str = param(doc="instance as GROUP/ID or GROUP/INDEX")
    disk_cid: str = param(doc="IaaS disk id to attach as the persistent disk")
    disk_properties: str | None = param(None, doc="bosh --disk-properties, e.g. 'copy'")


class AttachDisk(Step[AttachParams]):
    """Attach an IaaS disk (e.g. an imported volume) as an instance's persistent disk.

    BOSH only attaches to an instance in ``bosh stopped`` state (``stop`` or ``stop
    --hard``); a running instance fails here before anything changes. The previous disk
    is orphaned by the director; revert attaches it back (which un-orphans it). Reads
    target keys ``bosh.*``. Outputs ``instance``, ``disk_cid``, ``previous_disk_cids``.
    """

    Params = AttachParams
    idempotent = True
    outputs = ("instance", "disk_cid", "previous_disk_cids")

    def observe(self, ctx: StepContext, params: AttachParams) -> dict[str, Any]:
        inst = _find(director(ctx, params), params.instance)
        return {"instance": inst.name, "state": inst.state,
                "process_state": inst.process_state, "disk_cids": list(inst.disk_cids)}

    def plan(self, params: AttachParams, facts: dict[str, Any] | None) -> Plan:
        dep = deployment_name(params)
        if facts and params.disk_cid in facts["disk_cids"]:
            return Plan.unchanged(f"{facts['instance']} already has disk {params.disk_cid}")
        name = facts["instance"] if facts else params.instance
        line = f"bosh -d {dep} attach-disk {name} {params.disk_cid}"
        if params.disk_properties:
            line += f" --disk-properties {params.disk_properties}"
        reason = ""
        if facts:
            old = ", ".join(facts["disk_cids"]) or "none"
            reason = f"previous disk(s) {old} will be orphaned"
            if not _stopped(facts):
                reason = f"{name} is not stopped: run bosh.stop on it first; " + reason
        return Plan.of(Action.change(line), reason=reason)

    def apply(self, ctx: StepContext, params: AttachParams, plan: Plan) -> Result:
        bosh = director(ctx, params)
        inst = _find(bosh, params.instance)
        outputs = {"instance": inst.name, "disk_cid": params.disk_cid,
                   "previous_disk_cids": list(inst.disk_cids)}
        if params.disk_cid in inst.disk_cids:
            return Result(outputs=outputs, record={}, changed=False)
        if not _stopped({"state": inst.state, "process_state": inst.process_state}):
            raise StepFailed(f"{inst.name} is {inst.state or 'running'}; BOSH attaches a disk "
                             "only to a stopped instance: stop it (bosh.stop) and run again")
        record = {"instance": inst.name, "disk_cid": params.disk_cid,
                  "previous": list(inst.disk_cids)}
        ctx.checkpoint(record)
        try:
            bosh.attach_disk(inst.name, params.disk_cid, params.disk_properties)
        except BoshError as exc:
            raise StepFailed(str(exc), record=record) from None
        return Result(outputs=outputs, record=record)

    def verify(self, ctx: StepContext, params: AttachParams, result: Result | None) -> bool:
        return params.disk_cid in _find(director(ctx, params), params.instance).disk_cids

    def revert_plan(self, params: AttachParams, record: dict[str, Any]) -> Plan:
        if not record.get("previous"):
            return Plan.unchanged("no disk was replaced")
        return Plan.of(Action.change(f"bosh attach-disk {record['instance']} "
                                     f"{record['previous'][0]}"))

    def revert(self, ctx: StepContext, params: AttachParams, record: dict[str, Any]) -> None:
        if not record:
            return
        bosh = director(ctx, params)
        inst = _find(bosh, record["instance"])
        if record["disk_cid"] not in inst.disk_cids:
            return  # already reverted, or changed by someone else: leave it
        if not record["previous"]:
            raise StepFailed(f"{inst.name} had no persistent disk before; the bosh CLI cannot "
                             f"detach {record['disk_cid']} - leave it or remove it by hand")
        if not _stopped({"state": inst.state, "process_state": inst.process_state}):
            raise StepFailed(f"{inst.name} is running; stop it so BOSH can attach its previous "
                             f"disk {record['previous'][0]}, then roll back again")
        try:
            bosh.attach_disk(inst.name, record["previous"][0])
        except BoshError as exc:
            raise StepFailed(str(exc)) from None


def _stopped(facts: dict[str, Any]) -> bool:
    return facts["state"] in ("stopped", "detached") and facts["process_state"] != "running"


def _find(bosh: BoshCli, selector: str) -> Instance:
    group, _, ident = selector.partition("/")
    if not ident:
        raise StepFailed(f"instance '{selector}' must be written GROUP/ID or GROUP/INDEX")
    try:
        found = bosh.instances()
    except BoshError as exc:
        raise StepFailed(str(exc)) from None
    for inst in found:
        if inst.group == group and ident in (inst.id, inst.index):
            return inst
    raise StepFailed(f"instance '{selector}' not found in deployment "
                     f"'{bosh.settings.deployment}'")
