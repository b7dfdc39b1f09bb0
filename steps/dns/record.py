"""DNS records as plain data, and the pure rules for selecting and mirroring them.

Names are absolute, lower-case and written without the trailing dot, the way the BOSH
director stores them in PowerDNS (``0.api.default.cf.microbosh``); name-valued contents
(NS, CNAME, PTR, MX and SRV targets, the SOA's first two fields) likewise.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, replace
from typing import Any

#: record kinds an operator can select; ``wildcard`` is any record named ``*.<...>``
KINDS = ("SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "wildcard")

# Where a type's content holds domain names (index of the whitespace-separated field).
_NAME_FIELDS = {"NS": (0,), "CNAME": (0,), "PTR": (0,), "MX": (0,), "SRV": (2,),
                "SOA": (0, 1)}


def canonical(name: str) -> str:
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Rec:
    """One resource record. ``id`` is the PowerDNS row id when the record came from SQL."""

    name: str
    type: str
    content: str
    ttl: int
    prio: int | None = None
    id: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of a record regardless of TTL and row id."""
        return (self.name, self.type, self.content)

    def line(self) -> str:
        prio = f" {self.prio}" if self.prio is not None else ""
        return f"{self.name} {self.ttl} {self.type}{prio} {self.content}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rec:
        return cls(name=str(data["name"]), type=str(data["type"]), content=str(data["content"]),
                   ttl=int(data["ttl"]), prio=data.get("prio"), id=data.get("id"))


def normal_content(rtype: str, text: str) -> str:
    """Content as PowerDNS stores it: name fields without the trailing dot, lower-case."""
    fields = text.split()
    for index in _NAME_FIELDS.get(rtype, ()):
        if index < len(fields):
            fields[index] = canonical(fields[index])
    return " ".join(fields) if rtype in _NAME_FIELDS else text


def relative(name: str, zone: str) -> str:
    """``api.cf.example.com`` in ``example.com`` → ``api.cf``; the apex → ``@``."""
    if name == zone:
        return "@"
    if name.endswith("." + zone):
        return name[: -len(zone) - 1]
    return name


def kind(rec: Rec) -> str:
    return "wildcard" if rec.name.startswith("*.") or rec.name == "*" else rec.type


def select(records: list[Rec], zone: str, kinds: list[str],
           names: list[str] | None, *, by_type: bool = False) -> list[Rec]:
    """Records of the chosen kinds whose name relative to ``zone`` matches a pattern.

    Patterns are shell globs on the relative name (``@`` is the apex); a literal ``*``
    label is matched by the pattern ``[*]`` or by the ``wildcard`` kind. ``by_type``
    compares the record type only, so wildcard records count as their type.
    """
    chosen = []
    for rec in records:
        if (rec.type if by_type else kind(rec)) not in kinds:
            continue
        if names is not None and not any(fnmatch.fnmatchcase(relative(rec.name, zone), p)
                                         for p in names):
            continue
        chosen.append(rec)
    return chosen


def rename(name: str, old: str, new: str) -> str:
    if name == old:
        return new
    if name.endswith("." + old):
        return name[: -len(old)] + new
    return name


def mirror(rec: Rec, old: str, new: str, ttl: int | None = None) -> Rec:
    """The record as it would read in zone ``new``: names under ``old`` moved to ``new``."""
    fields = rec.content.split()
    for index in _NAME_FIELDS.get(rec.type, ()):
        if index < len(fields):
            fields[index] = rename(canonical(fields[index]), old, new)
    content = " ".join(fields) if rec.type in _NAME_FIELDS else rec.content
    return replace(rec, name=rename(rec.name, old, new), content=content,
                   ttl=rec.ttl if ttl is None else ttl, id=None)


def missing(wanted: list[Rec], present: list[Rec]) -> list[Rec]:
    """``wanted`` records that ``present`` lacks (compared without TTL and id), in order.

    A zone has one SOA: when the target already has one, a mirrored SOA is not wanted.
    """
    have = {r.key for r in present}
    has_soa = any(r.type == "SOA" for r in present)
    out: list[Rec] = []
    for rec in wanted:
        if rec.key in have or (rec.type == "SOA" and has_soa):
            continue
        have.add(rec.key)
        out.append(rec)
    return out


def max_ttl(records: list[Rec]) -> int:
    return max((r.ttl for r in records), default=0)


def human_seconds(seconds: float) -> str:
    """``3600`` → ``1h``, ``90`` → ``1m30s``: the unit an operator thinks in."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, s = divmod(s, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
