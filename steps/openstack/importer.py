"""Carrying out (and undoing) the operations :func:`steps.openstack.resources.diff` plans.

Each change is checkpointed as soon as the cloud has accepted it, so a failure or crash
midway leaves a record from which revert removes exactly what this import made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runbook.api import Result, StepContext, StepFailed

if TYPE_CHECKING:
    from steps.openstack.client import Cloud

Op = dict[str, Any]


class _Names:
    """Name -> id on the destination, growing as resources are created."""

    def __init__(self, destination: dict[str, list[Op]]) -> None:
        self.ids: dict[str, dict[str, str]] = {
            "network": {n["name"]: n["id"] for n in destination["networks"]},
            "subnet": {s["name"]: s["id"] for s in destination["subnets"]},
            "router": {r["name"]: r["id"] for r in destination["routers"]},
            "security group": {g["name"]: g["id"] for g in destination["security_groups"]}}

    def __call__(self, kind: str, name: str) -> str:
        try:
            return self.ids[kind][name]
        except KeyError:  # diff() checked references; this means the cloud changed under us
            raise StepFailed(f"{kind} '{name}' disappeared from the destination during the "
                             "import; run the step again") from None


def _body(op: Op, names: _Names) -> dict[str, Any]:
    """The Neutron request body for a create or update operation."""
    attrs = {k: v for k, v in op["attrs"].items() if v is not None}
    if op["op"] == "create":
        attrs["name"] = op["name"]
    if "network" in op.get("refs", {}):
        attrs["network_id"] = names("network", op["refs"]["network"])
    if "external_network" in attrs:
        attrs["external_gateway_info"] = {"network_id": names("network",
                                                              attrs.pop("external_network"))}
    return attrs


def _rule_body(op: Op, names: _Names) -> dict[str, Any]:
    attrs = {k: v for k, v in op["attrs"].items() if v is not None and k != "remote_group"}
    attrs["security_group_id"] = names("security group", op["name"])
    if op["attrs"].get("remote_group"):
        attrs["remote_group_id"] = names("security group", op["attrs"]["remote_group"])
    return attrs


def run_import(ctx: StepContext, cloud: Cloud, ops: list[Op], same: list[Op],
               destination: dict[str, list[Op]]) -> Result:
    names = _Names(destination)
    done: list[Op] = []
    resources = [{**s, "result": "unchanged"} for s in same]
    record: dict[str, Any] = {"cloud": cloud.name, "done": done}
    try:
        for op in ops:
            ctx.check_cancelled()
            if op["op"] == "create":
                rid = cloud.create(op["kind"], _body(op, names))
                names.ids[op["kind"]][op["name"]] = rid
                done.append({"do": "create", "kind": op["kind"], "name": op["name"],
                             "id": rid})
                resources.append({"kind": op["kind"], "name": op["name"], "id": rid,
                                  "result": "created"})
            elif op["op"] == "update":
                cloud.update(op["kind"], op["id"], _body(op, names))
                done.append({"do": "update", "kind": op["kind"], "name": op["name"],
                             "id": op["id"], "previous": op["previous"]})
                resources.append({"kind": op["kind"], "name": op["name"], "id": op["id"],
                                  "result": "updated"})
            elif op["op"] == "create_rule":
                rid = cloud.create("security group rule", _rule_body(op, names))
                done.append({"do": "create", "kind": "security group rule",
                             "name": op["name"], "id": rid})
            else:
                router, subnet = names("router", op["name"]), names("subnet", op["subnet"])
                cloud.add_interface(router, subnet)
                done.append({"do": "add_interface", "kind": "router interface",
                             "name": op["name"], "subnet": op["subnet"],
                             "router_id": router, "subnet_id": subnet})
            ctx.checkpoint({**record, "done": list(done)})  # a snapshot, not a live view
    except StepFailed as exc:
        raise StepFailed(f"{exc} ({len(done)} change(s) made before this; revert undoes "
                         "them)", record=record) from None
    counts = {r: sum(1 for x in resources if x["result"] == r)
              for r in ("created", "updated", "unchanged")}
    counts["rules_added"] = sum(1 for d in done if d["kind"] == "security group rule")
    counts["interfaces_added"] = sum(1 for d in done if d["do"] == "add_interface")
    return Result(outputs={**counts, "resources": resources}, record=record,
                  changed=bool(done))


def undo_import(cloud: Cloud, record: dict[str, Any]) -> None:
    """Newest first: detach, delete what was created, put back updated values. Things
    already gone are fine (revert may run twice)."""
    for entry in reversed(record.get("done", [])):
        if entry["do"] == "add_interface":
            cloud.remove_interface(entry["router_id"], entry["subnet_id"])
        elif entry["do"] == "create":
            cloud.delete(entry["kind"], entry["id"])
        else:
            previous = dict(entry["previous"])
            if "external_network_id" in previous:
                ext = previous.pop("external_network_id")
                previous["external_gateway_info"] = {"network_id": ext} if ext else None
            cloud.update(entry["kind"], entry["id"], previous)


def undo_lines(record: dict[str, Any]) -> list[str]:
    lines = []
    for entry in reversed(record.get("done", [])):
        if entry["do"] == "add_interface":
            lines.append(f"detach subnet '{entry['subnet']}' from router '{entry['name']}'")
        elif entry["do"] == "create":
            owner = f" of '{entry['name']}'" if entry["kind"].endswith("rule") else \
                f" '{entry['name']}'"
            lines.append(f"delete {entry['kind']}{owner} ({entry['id']})")
        else:
            lines.append(f"restore {entry['kind']} '{entry['name']}': "
                         + ", ".join(f"{k}={v!r}" for k, v in entry["previous"].items()))
    return lines
