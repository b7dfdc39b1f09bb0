"""Asking one server one question (dnspython), for ``dns.check``. Never changes anything."""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from steps.dns.record import canonical


@dataclass(frozen=True)
class Answer:
    """``status``: NOERROR, NXDOMAIN, SERVFAIL, REFUSED..., or ``unreachable``."""

    status: str
    values: list[str]
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"status": self.status, "values": self.values}
        if self.detail:
            data["detail"] = self.detail
        return data


def ask(server: str, port: int, name: str, rtype: str, timeout: float) -> Answer:
    """The values of type ``rtype`` a server gives for ``name`` (sorted, names canonical).

    Recursion is requested, so a resolver can be checked as well as an authoritative
    server (which ignores the flag).
    """
    query = dns.message.make_query(name, rtype)
    try:
        response, _ = dns.query.udp_with_fallback(query, server, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return Answer("unreachable", [], "no answer")
    except (dns.exception.DNSException, OSError) as exc:
        return Answer("unreachable", [], getattr(exc, "strerror", None) or type(exc).__name__)
    wanted = dns.rdatatype.from_text(rtype)
    values = sorted({canonical(rdata.to_text()) if rtype == "CNAME" else rdata.to_text()
                     for rrset in response.answer if rrset.rdtype == wanted
                     for rdata in rrset})
    return Answer(dns.rcode.to_text(response.rcode()), values)
