"""Switching and restoring LBaaS pool members, with a record that revert can trust.

New members go in before old ones go out, so the pool never empties; every change is
checkpointed at once, so a crash midway still leaves an exact list of what to undo.
"""

from __future__ import annotations

from typing import Any

from runbook.api import StepContext
from steps.gateway.lbaas import Pool


def switch_members(ctx: StepContext, pool: Pool, wanted: list[tuple[str, int]],
                   weight: int) -> dict[str, Any]:
    before = pool.members()
    have = {(m.address, m.protocol_port) for m in before}
    record: dict[str, Any] = {"kind": "openstack", "before": [m.to_dict() for m in before],
                              "created": [], "removed": []}
    for address, port in dict.fromkeys(wanted):
        if (address, port) in have:
            continue
        made = pool.add(address, port, weight, f"router-{address}-{port}")
        record["created"].append(made.to_dict())
        ctx.checkpoint(record)
    for member in before:
        if (member.address, member.protocol_port) in set(wanted):
            continue
        pool.remove(member.id)
        record["removed"].append(member.to_dict())
        ctx.checkpoint(record)
    return record


def restore_members(pool: Pool, record: dict[str, Any]) -> None:
    """Put removed members back first, then take out the ones the switch created.
    Running it twice changes nothing the second time."""
    present = {(m.address, m.protocol_port): m for m in pool.members()}
    for old in record["removed"]:
        key = (old["address"], int(old["protocol_port"]))
        if key not in present:
            pool.add(old["address"], key[1], int(old["weight"]), old["name"])
    created_ids = {m["id"] for m in record["created"]}
    for member in present.values():
        if member.id in created_ids:
            pool.remove(member.id)
