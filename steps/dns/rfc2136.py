"""A zone on any RFC 2136 server, edited by signed dynamic updates (dnspython).

Reading uses a zone transfer (AXFR, RFC 5936) signed with the same TSIG key (RFC 8945),
so the key must be allowed to transfer the zones it edits (BIND: ``allow-transfer { key
NAME; }``; PowerDNS: ``TSIG-ALLOW-AXFR`` metadata). Every change is one UPDATE message,
which the server applies entirely or not at all (RFC 2136 section 3). Removal deletes
individual RRs (class NONE, section 2.5.4), so records someone else added to the same
name stay. TTL changes carry a value-dependent prerequisite (section 2.4.2): if the
RRset changed since it was read, the server refuses and nothing changes.

An RFC 2136 update cannot create a zone: the zone must already be configured on the
server, with its own SOA.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from runbook.api import Secret, StepFailed
from steps.dns.record import Rec, canonical, normal_content
from steps.dns.zone import Added, ZoneState

_PRIO_TYPES = ("MX", "SRV")


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: Secret

    def key(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret.reveal(), self.algorithm)


def to_rec(name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> Rec:
    rtype = dns.rdatatype.to_text(rdata.rdtype)
    text = rdata.to_text(origin=None, relativize=False)
    prio = None
    if rtype in _PRIO_TYPES:
        first, text = text.split(None, 1)
        prio = int(first)
    return Rec(canonical(name.to_text()), rtype, normal_content(rtype, text), int(ttl), prio)


def to_rdata(rec: Rec) -> dns.rdata.Rdata:
    text = f"{rec.prio} {rec.content}" if rec.prio is not None else rec.content
    # Names in content are absolute; the root origin makes dnspython read them so.
    return dns.rdata.from_text(dns.rdataclass.IN, rec.type, text, origin=dns.name.root)


class Rfc2136:
    can_create_zone = False

    def __init__(self, server: str, port: int, key: TsigKey | None, *,
                 timeout: float = 10.0) -> None:
        self.server, self.port, self.tsig, self.timeout = server, port, key, timeout
        signed = f" with TSIG key {key.name}" if key else " without TSIG"
        self.where = f"DNS server {server}:{port}{signed}"

    def close(self) -> None:
        pass

    # -- reading -----------------------------------------------------------------------
    def _serves(self, zone: str) -> bool:
        query = dns.message.make_query(zone, dns.rdatatype.SOA)
        response = self._exchange(query, f"asking for the SOA of {zone}")
        origin = dns.name.from_text(zone)
        return (response.rcode() == dns.rcode.NOERROR and bool(response.flags & dns.flags.AA)
                and any(r.name == origin and r.rdtype == dns.rdatatype.SOA
                        for r in response.answer))

    def read(self, zone: str) -> ZoneState:
        if not self._serves(zone):
            return ZoneState(zone, exists=False)
        origin = dns.name.from_text(zone)
        query = dns.message.make_query(origin, dns.rdatatype.AXFR)
        if self.tsig is not None:
            query.use_tsig(self.tsig.key())
        holder = dns.zone.Zone(origin, relativize=False)
        try:
            dns.query.inbound_xfr(self.server, holder, query=query, port=self.port,
                                  timeout=self.timeout, lifetime=self.timeout * 3)
        except dns.xfr.TransferError as exc:
            raise StepFailed(f"the {self.where} refused the zone transfer of {zone} "
                             f"({dns.rcode.to_text(exc.rcode)}); allow this key to transfer "
                             "the zone (BIND: allow-transfer { key NAME; })") from None
        except (dns.exception.DNSException, OSError) as exc:
            raise self._explain(exc, f"transferring zone {zone}") from None
        records = [to_rec(name, rds.ttl, rdata)
                   for name, rds in holder.iterate_rdatasets() for rdata in rds]
        # DNS canonical order (RFC 4034 6.1), so plans read the same whatever the server.
        records.sort(key=lambda r: (dns.name.from_text(r.name), r.type, r.content))
        return ZoneState(zone, exists=True, records=records)

    # -- writing -----------------------------------------------------------------------
    def _update(self, zone: str) -> dns.update.UpdateMessage:
        if self.tsig is None:
            return dns.update.UpdateMessage(zone)
        return dns.update.UpdateMessage(zone, keyring=self.tsig.key())

    def _send(self, message: dns.update.UpdateMessage, doing: str) -> None:
        response = self._exchange(message, doing, tcp=True)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        name = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN,
                     dns.rcode.YXDOMAIN):
            raise StepFailed(f"{doing}: records changed on the {self.where} since they were "
                             f"read ({name}); nothing was changed, plan again")
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            raise StepFailed(f"{doing}: the {self.where} refused the update ({name}); check "
                             "that the zone allows updates with this key (BIND: update-policy "
                             "or allow-update); nothing was changed")
        raise StepFailed(f"{doing}: the {self.where} answered {name}; nothing was changed")

    def _exchange(self, message: dns.message.Message, doing: str,
                  tcp: bool = False) -> dns.message.Message:
        try:
            if tcp:
                return dns.query.tcp(message, self.server, port=self.port, timeout=self.timeout)
            return dns.query.udp_with_fallback(message, self.server, port=self.port,
                                               timeout=self.timeout)[0]
        except (dns.exception.DNSException, OSError) as exc:
            raise self._explain(exc, doing) from None

    def _explain(self, exc: BaseException, doing: str) -> StepFailed:
        if isinstance(exc, dns.tsig.PeerError):
            what = {dns.tsig.PeerBadKey: "does not know the key",
                    dns.tsig.PeerBadSignature: "found the signature wrong (secret or "
                                               "algorithm differ)",
                    dns.tsig.PeerBadTime: "found the request's time out of range "
                                          "(check the clocks)"}.get(type(exc), str(exc))
            return StepFailed(f"{doing}: the {self.where} rejected the TSIG key: the server "
                              f"{what}; check the target's dns.tsig_key_name, tsig_algorithm "
                              "and tsig_secret; nothing was changed")
        if isinstance(exc, (dns.tsig.BadSignature, dns.tsig.BadKey, dns.tsig.BadAlgorithm,
                            dns.message.UnknownTSIGKey)):
            return StepFailed(f"{doing}: the answer of the {self.where} is not signed with "
                              "the expected TSIG key; check the target's dns.tsig_* settings; "
                              "nothing was changed")
        if isinstance(exc, (dns.exception.Timeout, OSError)):
            reason = "no answer" if isinstance(exc, dns.exception.Timeout) else \
                (exc.strerror or type(exc).__name__)
            return StepFailed(f"{doing}: the {self.where} cannot be reached ({reason}); check "
                              "the target's dns.server and dns.port; nothing was changed")
        return StepFailed(f"{doing}: the {self.where} gave an answer that cannot be used "
                          f"({type(exc).__name__}: {exc}); nothing was changed")

    def add(self, zone: str, records: list[Rec], *, create_zone: bool) -> Added:
        if create_zone:
            raise StepFailed(f"zone {zone} is not served by the {self.where}, and RFC 2136 "
                             "cannot create zones; configure the zone on the server first")
        update = self._update(zone)
        for rec in records:
            update.add(rec.name + ".", rec.ttl, to_rdata(rec))
        self._send(update, f"adding {len(records)} records to zone {zone}")
        return Added(list(records))

    def remove(self, zone: str, records: list[Rec]) -> int:
        present = {r.key for r in self.read(zone).records}
        there = [r for r in records if r.key in present]
        if there:
            update = self._update(zone)
            for rec in there:
                update.delete(rec.name + ".", to_rdata(rec))  # this RR only, not the RRset
            self._send(update, f"removing {len(there)} records from zone {zone}")
        return len(there)

    def remove_added_after(self, zone: str, records: list[Rec], last_id: int) -> int:
        # No row ids here: the records recorded before the update are exactly those the
        # update would add, and they were absent before it.
        return self.remove(zone, records)

    def drop_zone_if_empty(self, zone: str, domain_id: int) -> bool:
        return False  # this provider never creates zones

    def set_ttls(self, zone: str, changes: list[tuple[Rec, int]], *, strict: bool) -> list[Rec]:
        current = self.read(zone).records
        rrsets: dict[tuple[str, str], list[Rec]] = {}
        for rec in current:
            rrsets.setdefault((rec.name, rec.type), []).append(rec)
        update = self._update(zone)
        done: list[Rec] = []
        for (name, rtype), ttl in _by_rrset(changes).items():
            observed = [rec for rec, _ in changes if (rec.name, rec.type) == (name, rtype)]
            now = rrsets.get((name, rtype), [])
            same = {r.key for r in now} == {r.key for r in observed} and \
                all(r.ttl == observed[0].ttl for r in now)
            if not same:
                if strict:
                    raise StepFailed(f"records {name} {rtype} changed on the {self.where} "
                                     "since they were read; nothing was changed, plan again")
                continue
            rdataset = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
            for rec in now:
                rdataset.add(to_rdata(rec))
            # Prerequisite: the RRset is exactly what was read; then replace its TTL.
            update.present(name + ".", rdataset)
            update.replace(name + ".", ttl, *[to_rdata(r) for r in now])
            done.extend(observed)
        if done:
            self._send(update, f"changing TTLs in zone {zone}")
        return done


def _by_rrset(changes: list[tuple[Rec, int]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for rec, ttl in changes:
        out[(rec.name, rec.type)] = ttl
    return out
