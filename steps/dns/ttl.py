"""``dns.set_ttl``: lower TTLs ahead of a switch (revert restores the old ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from runbook.api import Action, Duration, Plan, Result, Step, StepContext, StepFailed, param
from steps.dns.common import ZoneParams, client_for, flush, flush_line, state_facts
from steps.dns.record import Rec, canonical, human_seconds, select

RecordType = Literal["SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR"]


@dataclass(frozen=True, kw_only=True)
class SetTtlParams(ZoneParams):
    zone: str = param(doc="the zone whose records change")
    ttl: int = param(doc="the new TTL in seconds")
    types: list[RecordType] = param(factory=lambda: ["A", "AAAA", "CNAME"],
                                    doc="record types to change")
    names: list[str] | None = param(None, doc="shell globs on names relative to the zone "
                                              "('@' is the apex); default: all")
    wait: bool = param(True, doc="after the change, wait until answers cached with the old "
                                 "TTL have expired")
    old_ttl: Duration | None = param(None, doc="the TTL published now, for the forecast made "
                                               "before the zone is read (the plan uses the "
                                               "observed one)")


def wait_seconds(records: list[Rec], new_ttl: int) -> int:
    """How long an answer cached before the change may still be served after it."""
    longest = max((r.ttl for r in records), default=0)
    return longest if longest > new_ttl else 0


class SetTtl(Step[SetTtlParams]):
    """Give the selected records of ``zone`` a new TTL, then wait out the old one.

    Lowering the TTL a day before a switch makes the switch itself visible within the new
    TTL; but only once every answer cached under the old TTL has expired, which is the
    wait the plan shows and :meth:`estimate` returns. Target keys as for
    ``dns.dual_domain`` (``powerdns.dsn`` or ``dns.*``).

    Outputs: ``zone``, ``changed`` (count), ``records`` (name, type, content, old_ttl,
    new_ttl each), ``wait_seconds``. Revert puts each old TTL back, on records that still
    carry the TTL this step set (a TTL someone changed since is left as it is).
    """

    Params = SetTtlParams
    idempotent = True
    outputs = ("zone", "changed", "records", "wait_seconds")

    def observe(self, ctx: StepContext, params: SetTtlParams) -> dict[str, Any]:
        zone = canonical(params.zone)
        with client_for(ctx, params) as client:
            state = client.read(zone)
            if not state.exists:
                raise StepFailed(f"zone {zone} is not found at the {client.where}; check zone "
                                 "and the target")
            chosen = select(state.records, zone, list(params.types), params.names,
                            by_type=True)
            if not chosen:
                raise StepFailed(f"no {'/'.join(params.types)} record in zone {zone} matches "
                                 f"names={params.names}; nothing to change")
            facts = state_facts(state)
            facts["records"] = [r.to_dict() for r in chosen]
            return {"where": client.where, **facts}

    def changes(self, params: SetTtlParams, facts: dict[str, Any]) -> list[Rec]:
        return [r for r in (Rec.from_dict(x) for x in facts["records"]) if r.ttl != params.ttl]

    def plan(self, params: SetTtlParams, facts: dict[str, Any] | None) -> Plan:
        zone = canonical(params.zone)
        if facts is None:
            guess = f"; then wait {human_seconds(params.old_ttl)}" \
                if params.old_ttl and params.wait and params.old_ttl > params.ttl else ""
            return Plan.of(Action.unknown(f"set TTL {params.ttl} on the "
                                          f"{'/'.join(params.types)} records of {zone}{guess}"))
        todo = self.changes(params, facts)
        if not todo:
            return Plan.unchanged(f"the selected records of {zone} already have TTL {params.ttl}")
        actions = [Action.change(f"set TTL of {r.name} {r.type} {r.content}: "
                                 f"{r.ttl} -> {params.ttl}") for r in todo]
        actions += [Action.change(x) for x in flush_line(params)]
        wait = wait_seconds(todo, params.ttl)
        if wait and params.wait:
            actions.append(Action.read(f"wait {human_seconds(wait)} (the old TTL) until no "
                                       "resolver serves an answer cached before the change"))
            reason = f"the old TTL implies a wait of {human_seconds(wait)}"
        elif wait:
            reason = (f"answers cached with the old TTL live up to {human_seconds(wait)} after "
                      "this step: switch no earlier")
        else:
            reason = "no wait: the old TTLs are not longer than the new one"
        return Plan.of(*actions, reason=reason)

    def estimate(self, params: SetTtlParams,
                 facts: dict[str, Any] | None = None) -> float | None:
        """The wait the old TTL implies: observed when ``facts`` are given, else ``old_ttl``."""
        if not params.wait:
            return 0.0
        if facts is not None:
            return float(wait_seconds(self.changes(params, facts), params.ttl))
        if params.old_ttl is not None:
            return float(params.old_ttl) if params.old_ttl > params.ttl else 0.0
        return None

    def apply(self, ctx: StepContext, params: SetTtlParams, plan: Plan) -> Result:
        zone = canonical(params.zone)
        facts = self.observe(ctx, params)
        todo = self.changes(params, facts)
        entries = [{**r.to_dict(), "old_ttl": r.ttl, "new_ttl": params.ttl} for r in todo]
        record = {"zone": zone, "changes": entries}
        wait = wait_seconds(todo, params.ttl)
        outputs: dict[str, Any] = {"zone": zone, "changed": len(todo), "wait_seconds": 0,
                                   "records": [{k: e[k] for k in ("name", "type", "content",
                                                                  "old_ttl", "new_ttl")}
                                               for e in entries]}
        if not todo:
            return Result(outputs=outputs, record=record, changed=False)
        # Before the change: revert only restores records still carrying the new TTL, so
        # this is safe to hold even if the change below never happens.
        ctx.checkpoint(record)
        with client_for(ctx, params) as client:
            client.set_ttls(zone, [(r, params.ttl) for r in todo], strict=True)
        flush(ctx, params)
        if params.wait and wait:
            ctx.log.info("waiting %ss for answers cached with the old TTL to expire", wait)
            ctx.sleep(wait)
            outputs["wait_seconds"] = wait
        return Result(outputs=outputs, record=record)

    def verify(self, ctx: StepContext, params: SetTtlParams,
               result: Result | None) -> bool | None:
        return not self.changes(params, self.observe(ctx, params))

    def revert(self, ctx: StepContext, params: SetTtlParams, record: dict[str, Any]) -> None:
        zone = str(record.get("zone") or canonical(params.zone))
        back = [(Rec.from_dict({**e, "ttl": e["new_ttl"]}), int(e["old_ttl"]))
                for e in record.get("changes", [])]
        if not back:
            return
        with client_for(ctx, params) as client:
            done = client.set_ttls(zone, back, strict=False)
        if len(done) < len(back):
            ctx.log.warning("%d records of zone %s no longer carry TTL %s and were left as "
                            "they are", len(back) - len(done), zone, params.ttl)
        if done:
            flush(ctx, params)

    def revert_plan(self, params: SetTtlParams, record: dict[str, Any]) -> Plan:
        entries = record.get("changes", [])
        if not entries:
            return Plan.unchanged("this run changed no TTL")
        return Plan.of(*[Action.change(f"set TTL of {e['name']} {e['type']} {e['content']}: "
                                       f"{e['new_ttl']} -> {e['old_ttl']}") for e in entries])
