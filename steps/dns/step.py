"""DNS step types: ``dns.dual_domain``, ``dns.set_ttl`` and ``dns.check``.

``dns.dual_domain`` makes the new stack's DNS answer for a second domain, the way the
seed procedure made BOSH's PowerDNS serve both the old and the new system domain so the
parallel environment reached its own SSL gateway without touching the live endpoint;
its revert removes exactly what it added. This module imports only the standard library
and ``runbook.api``; psycopg and dnspython load when a step runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from runbook.api import Action, Plan, Result, Step, StepContext, StepFailed, param
from steps.dns.check import CheckDns
from steps.dns.common import ZoneParams, client_for, flush, flush_line, state_facts, state_from
from steps.dns.record import Rec, canonical, mirror, missing, select
from steps.dns.ttl import SetTtl

__all__ = ["CheckDns", "DualDomain", "SetTtl"]

Kind = Literal["SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "wildcard"]


@dataclass(frozen=True, kw_only=True)
class DualDomainParams(ZoneParams):
    first_domain: str = param(doc="the zone served now, whose records are mirrored")
    second_domain: str = param(doc="the zone to serve as well (created if the provider can)")
    mirror: list[Kind] = param(factory=lambda: ["SOA", "NS", "A", "wildcard"],
                               doc="kinds of records to copy; 'wildcard' is any *.name record")
    names: list[str] | None = param(None, doc="shell globs on names relative to the first "
                                              "domain ('@' is the apex); default: all")
    ttl: int | None = param(None, doc="TTL of the copies (default: the original's)")


class DualDomain(Step[DualDomainParams]):
    """Serve ``second_domain`` beside ``first_domain`` by copying the selected records.

    Target keys read: ``powerdns.dsn`` (provider ``powerdns-db``) or ``dns.server``,
    ``dns.port``, ``dns.tsig_key_name``, ``dns.tsig_algorithm``, ``dns.tsig_secret``
    (provider ``rfc2136``; the secret by reference). Names under the first domain are
    renamed into the second, in record names and in name-valued contents (NS targets,
    SOA primary). With ``powerdns-db`` the zone is created as a NATIVE domain, as the
    BOSH director creates its own; with ``rfc2136`` it must already be configured and
    keeps its own SOA (an update cannot add a second one). A record already present in
    the second zone is left alone and not counted as added; a zone that already has an
    SOA keeps it.

    PowerDNS caches answers (and, from 4.5, the list of zones): give ``flush_command``
    (the BOSH powerdns job's ``[/var/vcap/jobs/powerdns/bin/powerdns_ctl, flush]``, or
    ``[sh, -c, "pdns_control purge && pdns_control rediscover"]``) so the change is
    served at once; it runs after apply and after a revert that removed something.

    Outputs: ``zone``, ``created_zone``, ``added`` (count), ``records`` (lines added).
    Record: the row ids (SQL) or RRs (RFC 2136) added, and whether the zone was created.
    """

    Params = DualDomainParams
    idempotent = True
    outputs = ("zone", "created_zone", "added", "records")

    def observe(self, ctx: StepContext, params: DualDomainParams) -> dict[str, Any]:
        first, second = canonical(params.first_domain), canonical(params.second_domain)
        if first == second:
            raise StepFailed(f"first_domain and second_domain are both {first}; name two "
                             "different domains")
        with client_for(ctx, params) as client:
            source, dest = client.read(first), client.read(second)
            if not source.exists:
                raise StepFailed(f"zone {first} is not found at the {client.where}; check "
                                 "first_domain and the target")
            if not dest.exists and not client.can_create_zone:
                raise StepFailed(f"zone {second} is not served by the {client.where}, and "
                                 "RFC 2136 cannot create zones; configure it there first")
            chosen = select(source.records, first, list(params.mirror), params.names)
            if not chosen:
                raise StepFailed(f"no record of zone {first} matches mirror={list(params.mirror)}"
                                 f" names={params.names}; nothing to copy")
            return {"where": client.where, "first": state_facts(source),
                    "second": state_facts(dest)}

    def wanted(self, params: DualDomainParams, facts: dict[str, Any]) -> list[Rec]:
        first, second = canonical(params.first_domain), canonical(params.second_domain)
        source, dest = state_from(facts["first"]), state_from(facts["second"])
        chosen = select(source.records, first, list(params.mirror), params.names)
        copies = [mirror(r, first, second, params.ttl) for r in chosen]
        if params.provider == "rfc2136":
            # The zone has its own SOA on the server; an update can only replace it.
            copies = [r for r in copies if r.type != "SOA"]
        return missing(copies, dest.records)

    def plan(self, params: DualDomainParams, facts: dict[str, Any] | None) -> Plan:
        second = canonical(params.second_domain)
        if facts is None:
            return Plan.of(Action.unknown(
                f"add zone {second} with copies of the {', '.join(params.mirror)} records of "
                f"{canonical(params.first_domain)} ({params.provider})"))
        to_add = self.wanted(params, facts)
        exists = bool(facts["second"]["exists"])
        if exists and not to_add:
            return Plan.unchanged(f"zone {second} already serves every selected record")
        actions = [] if exists else [Action.change(f"create zone {second} (NATIVE) in the "
                                                   f"{facts['where']}")]
        actions += [Action.change(f"add {r.line()}") for r in to_add]
        actions += [Action.change(line) for line in flush_line(params)]
        return Plan.of(*actions, reason=f"revert removes exactly these {len(to_add)} records"
                       + ("" if exists else f" and zone {second} if nothing else is in it"))

    def apply(self, ctx: StepContext, params: DualDomainParams, plan: Plan) -> Result:
        second = canonical(params.second_domain)
        facts = self.observe(ctx, params)  # the plan may be old: act on what is there now
        to_add = self.wanted(params, facts)
        create = not facts["second"]["exists"]
        outputs: dict[str, Any] = {"zone": second, "created_zone": create,
                                   "added": len(to_add), "records": [r.line() for r in to_add]}
        if not to_add and not create:
            return Result(outputs=outputs, record={"zone": second, "records": []}, changed=False)
        # Saved before the change: if the process dies between the commit and the next
        # checkpoint, revert still knows what to look for (rows written after last_id).
        ctx.checkpoint({"zone": second, "pending": [r.to_dict() for r in to_add],
                        "last_id": facts["second"]["last_id"], "created_zone": create})
        with client_for(ctx, params) as client:
            added = client.add(second, to_add, create_zone=create)
        record = {"zone": second, "created_zone": create, "domain_id": added.domain_id,
                  "records": [r.to_dict() for r in added.records]}
        ctx.checkpoint(record)
        ctx.log.info("added %d records to zone %s", len(added.records), second)
        flush(ctx, params)
        return Result(outputs=outputs, record=record)

    def verify(self, ctx: StepContext, params: DualDomainParams,
               result: Result | None) -> bool | None:
        with client_for(ctx, params) as client:
            dest = client.read(canonical(params.second_domain))
        if not dest.exists:
            return False
        present = {r.key for r in dest.records}
        if result is not None:
            return all(Rec.from_dict(r).key in present for r in result.record.get("records", []))
        return not self.wanted(params, self.observe(ctx, params))

    def revert(self, ctx: StepContext, params: DualDomainParams, record: dict[str, Any]) -> None:
        zone = str(record.get("zone") or canonical(params.second_domain))
        with client_for(ctx, params) as client:
            if "pending" in record:
                recs = [Rec.from_dict(r) for r in record["pending"]]
                removed = client.remove_added_after(zone, recs, int(record.get("last_id") or 0))
                state = client.read(zone)
                domain_id = state.domain_id if record.get("created_zone") else None
            else:
                recs = [Rec.from_dict(r) for r in record.get("records", [])]
                removed = client.remove(zone, recs) if recs else 0
                domain_id = record.get("domain_id") if record.get("created_zone") else None
            ctx.log.info("removed %d of the %d records added to zone %s", removed, len(recs),
                         zone)
            dropped = domain_id is not None and client.drop_zone_if_empty(zone, int(domain_id))
            if domain_id is not None and not dropped and client.read(zone).exists:
                ctx.log.warning("zone %s was created by this run but now holds records "
                                "this run did not add; it is kept", zone)
        if removed or dropped:
            flush(ctx, params)

    def revert_plan(self, params: DualDomainParams, record: dict[str, Any]) -> Plan:
        zone = str(record.get("zone") or canonical(params.second_domain))
        recs = [Rec.from_dict(r) for r in record.get("records", record.get("pending", []))]
        actions = [Action.change(f"remove {r.line()}" + (f" (row {r.id})" if r.id else ""))
                   for r in recs]
        if record.get("created_zone"):
            actions.append(Action.change(f"remove zone {zone} if it holds no other record"))
        if not actions:
            return Plan.unchanged(f"this run added nothing to zone {zone}")
        return Plan.of(*actions, *[Action.change(x) for x in flush_line(params)])
