"""Moving application security group destinations to the new networks.

Cloud Controller keeps each security group's rules as JSON text in
``security_groups.rules``: a list of objects whose ``destination`` is an IP, a CIDR or a
range ``first-last`` (a comma-separated list of these is handled too). After a move,
egress rules must name the new networks, or applications lose their services.

A network map (old CIDR -> new CIDR of the same size) moves every address, subnet and
range inside an old network to the same offset in the new one; the host map's IP entries
move single addresses first, since they are more specific. A destination that overlaps
an old network without lying inside it (a wider CIDR, a range running past its end) is
left as it is and reported, unless it covers both the old and the new network whole (an
allow-all rule), because no translation of it is right.

The network map changes only ``destination`` values; every other string in the rules goes
through the host map like any JSON column, and the bytes between strings are kept.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

from steps.ccdb.hostmap import Change, HostMap, HostMapError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_DESTINATION = re.compile(r'"destination"\s*:\s*("(?:[^"\\]|\\.)*")')


@dataclass
class Moved:
    """What one rules value gave: the changed destinations and the ones left alone."""

    changes: list[Change] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


class NetworkMap:
    def __init__(self, networks: dict[str, str], hosts: dict[str, str]) -> None:
        self.networks = [(self._network(old, "old"), self._network(new, "new"))
                         for old, new in networks.items()]
        self.addresses: dict[Address, Address] = {}
        for old, new in hosts.items():
            try:
                self.addresses[ipaddress.ip_address(old)] = ipaddress.ip_address(new)
            except ValueError:
                continue  # hostnames, host:port pairs and URLs never name a destination
        self._check()

    @staticmethod
    def _network(text: str, which: str) -> Network:
        try:
            return ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise HostMapError(f"networks entry {text!r}: not an {which} network in CIDR "
                               f"form ({exc}); write it like 10.0.16.0/20") from None

    def _check(self) -> None:
        olds = [old for old, _new in self.networks]
        for old, new in self.networks:
            if old.version != new.version or old.prefixlen != new.prefixlen:
                raise HostMapError(f"networks entry {old} -> {new}: both sides must be the "
                                   "same size (same IP version and prefix length), so every "
                                   "address has a place in the new network")
            for other in olds:
                if other is not old and other.version == old.version and other.overlaps(old):
                    raise HostMapError(f"networks entries {old} and {other} overlap: "
                                       "give each old address one new place")
            for other in olds:
                if other.version == new.version and other.overlaps(new):
                    raise HostMapError(f"networks target {new} overlaps the old network "
                                       f"{other}: the rewrite would not be idempotent")
        for new_address in self.addresses.values():
            for old in olds:
                if new_address.version == old.version and new_address in old:
                    raise HostMapError(f"host map target {new_address} lies in the old network "
                                       f"{old}: the rewrite would not be idempotent")

    def __bool__(self) -> bool:
        return bool(self.networks or self.addresses)

    # -- one destination ----------------------------------------------------------------------

    def address(self, address: Address) -> Address | None:
        """Where a single address goes: its host map entry, else its network's offset."""
        if address in self.addresses:
            return self.addresses[address]
        return self._in_network(address)

    def _in_network(self, address: Address) -> Address | None:
        for old, new in self.networks:
            if address.version == old.version and address in old:
                offset = int(address) - int(old.network_address)
                return ipaddress.ip_address(int(new.network_address) + offset)
        return None

    def destination(self, text: str) -> tuple[str, list[str]]:
        """(new destination, parts left alone because they only partly overlap)."""
        parts, unresolved = [], []
        for part in text.split(","):
            new, partial = self._part(part.strip())
            if partial:
                unresolved.append(part.strip())
            # keep the spacing around commas as written
            parts.append(part.replace(part.strip(), new) if new != part.strip() else part)
        return ",".join(parts), unresolved

    def _part(self, part: str) -> tuple[str, bool]:
        """(new text, whether it is left alone although it only partly covers an old
        network or does not cover the new one)."""
        try:
            if "-" in part:
                first, last = (ipaddress.ip_address(p.strip()) for p in part.split("-", 1))
                if first.version != last.version or int(first) > int(last):
                    return part, False  # CC refuses such a range; nothing to move
                network = self._containing(first, last)
                if network is not None:
                    return f"{self._in_network(first)}-{self._in_network(last)}", False
                if first == last and (moved := self.address(first)) is not None:
                    return f"{moved}-{moved}", False
                return part, self._partly(first, last)
            if "/" in part:
                net = ipaddress.ip_network(part, strict=False)
                first, last = net.network_address, net.broadcast_address
                if first == last and (moved := self.address(first)) is not None:
                    return f"{moved}/{net.prefixlen}", False
                if self._containing(first, last) is not None:
                    return f"{self._in_network(first)}/{net.prefixlen}", False
                return part, self._partly(first, last)
            address = ipaddress.ip_address(part)
            moved = self.address(address)
            return (str(moved), False) if moved is not None else (part, False)
        except ValueError:
            return part, False  # not an address (a hostname, or text CC would refuse)

    def _containing(self, first: Address, last: Address) -> Network | None:
        """The old network holding the whole span, if one does."""
        for old, _new in self.networks:
            if first.version == old.version and first in old and last in old:
                return old
        return None

    def _partly(self, first: Address, last: Address) -> bool:
        """A span that overlaps an old network without moving is only right when it
        covers that old network and its new one completely (an allow-all rule)."""
        for old, new in self.networks:
            if first.version != old.version:
                continue
            lo, hi = int(first), int(last)
            if lo <= int(old.broadcast_address) and hi >= int(old.network_address):
                covers_old = lo <= int(old.network_address) and hi >= int(old.broadcast_address)
                covers_new = lo <= int(new.network_address) and hi >= int(new.broadcast_address)
                if not (covers_old and covers_new):
                    return True
        return False

    # -- a whole rules value ------------------------------------------------------------------

    def rewrite_rules(self, text: str, hosts: HostMap) -> tuple[str, Moved]:
        """Move the destinations of a ``security_groups.rules`` value; everything else in
        it goes through the host map."""
        moved = Moved()
        out: list[str] = []
        position = 0
        for match in _DESTINATION.finditer(text):
            literal = match.group(1)
            try:
                value = json.loads(literal)
            except ValueError:
                continue
            if not isinstance(value, str):
                continue
            new, unresolved = self.destination(value)
            moved.unresolved.extend(unresolved)
            if new == value:
                continue
            out.append(text[position:match.start(1)])
            out.append(json.dumps(new))
            position = match.end(1)
            moved.changes.append(Change("destination", value, new))
        out.append(text[position:])
        rewritten, changes = hosts.rewrite_json("".join(out), skip_key="destination")
        moved.changes.extend(changes)
        return rewritten, moved
