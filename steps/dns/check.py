"""``dns.check``: names resolve to the expected values at every listed server. Read-only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from runbook.api import (
    Action,
    Duration,
    MissingDependency,
    Plan,
    Result,
    Step,
    StepContext,
    StepFailed,
    TargetRef,
    param,
)
from steps.dns.record import canonical, human_seconds


@dataclass(frozen=True)
class NameCheck:
    name: str = param(doc="name to ask for; a leading '*.' is replaced by probe_label, so "
                          "the answer comes from the wildcard record")
    type: Literal["A", "AAAA", "CNAME"] = param("A", doc="record type")
    expect: list[str] = param(factory=list, doc="expected values (any order); empty: the "
                                                "name must have no such record")


@dataclass(frozen=True)
class CheckDnsParams:
    names: list[NameCheck] = param(doc="questions and expected answers")
    servers: list[str] = param(factory=list, doc="servers to ask: 'host', 'host:port' or "
                                                 "'[v6]:port'")
    target: TargetRef | None = param(None, doc="also ask the target's dns.server (dns.port)")
    timeout: Duration = param(Duration(60), doc="keep asking until this long has passed")
    interval: Duration = param(Duration(2), doc="pause between rounds")
    query_timeout: Duration = param(Duration(2), doc="wait for one answer")
    probe_label: str = param("runbook-probe", doc="label put in place of '*' in wildcard names")


#: answers meaning "no such record here"; REFUSED is what an authoritative server says
#: for a domain it does not serve (e.g. once dns.dual_domain was reverted)
NO_RECORD = ("NOERROR", "NXDOMAIN", "REFUSED")


def parse_server(text: str) -> tuple[str, int]:
    """``10.0.0.2`` → (10.0.0.2, 53); ``10.0.0.2:5353``; ``[::1]:5353``; ``::1``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


def question(check: NameCheck, probe_label: str) -> str:
    name = canonical(check.name)
    return probe_label + name[1:] if name.startswith("*.") else name


def normal_value(rtype: str, value: str) -> str:
    """One spelling per value: names canonical, IPv6 compressed, as dnspython prints them."""
    if rtype == "CNAME":
        return canonical(value)
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return value.strip()


def expected(check: NameCheck) -> list[str]:
    return sorted({normal_value(check.type, v) for v in check.expect})


class CheckDns(Step[CheckDnsParams]):
    """Ask each server each question until all answers match or ``timeout`` passes.

    Reads (optional) target key ``dns.server``/``dns.port``. A question matches when the
    server answers NOERROR with exactly the expected set of values, or, when ``expect`` is
    empty, answers without any value of that type (NOERROR, NXDOMAIN, or REFUSED for a
    domain the server does not serve). Nothing is changed anywhere.

    Outputs: ``ok``, ``attempts``, ``answers``: per server (``host:port``), per question
    (``name TYPE``), ``status`` (the DNS rcode or ``unreachable``), ``values`` and
    ``match``.
    """

    Params = CheckDnsParams
    idempotent = True
    outputs = ("ok", "attempts", "answers")

    def servers(self, ctx: StepContext | None, params: CheckDnsParams) -> list[tuple[str, int]]:
        found = [parse_server(s) for s in params.servers]
        if ctx is not None and params.target is not None:
            dns_settings = ctx.target(params.target).get("dns") or {}
            if dns_settings.get("server"):
                found.append((str(dns_settings["server"]), int(dns_settings.get("port", 53))))
        return found

    def plan(self, params: CheckDnsParams, facts: dict[str, Any] | None) -> Plan:
        where = ", ".join(f"{h}:{p}" for h, p in self.servers(None, params))
        if params.target is not None:
            where = f"{where}, target {params.target}" if where else f"target {params.target}"
        actions = [Action.read(f"ask {where} for {question(c, params.probe_label)} {c.type}, "
                               f"expect {', '.join(expected(c)) or 'no record'}")
                   for c in params.names]
        return Plan.of(*actions, reason=f"asked every {human_seconds(params.interval)} for up "
                                        f"to {human_seconds(params.timeout)}")

    def estimate(self, params: CheckDnsParams) -> float | None:
        return 1.0  # a matching answer comes at once; the timeout is the worst case

    def apply(self, ctx: StepContext, params: CheckDnsParams, plan: Plan) -> Result:
        try:
            from steps.dns.lookup import ask
        except ImportError as exc:
            raise MissingDependency(exc.name or "dns", "dns") from None
        servers = self.servers(ctx, params)
        if not servers or not params.names:
            raise StepFailed("dns.check needs at least one server (servers or target) and "
                             "one name")
        deadline = ctx.clock.monotonic() + float(params.timeout)
        attempts = 0
        while True:
            attempts += 1
            answers: dict[str, dict[str, Any]] = {}
            wrong: list[str] = []
            for host, port in servers:
                per: dict[str, Any] = {}
                for check in params.names:
                    qname = question(check, params.probe_label)
                    got = ask(host, port, qname, check.type, float(params.query_timeout))
                    want = expected(check)
                    match = got.values == want and got.status in (
                        ("NOERROR",) if want else NO_RECORD)
                    per[f"{qname} {check.type}"] = {**got.to_dict(), "match": match}
                    if got.status == "unreachable":
                        wrong.append(f"{host}:{port} does not answer {qname} {check.type} "
                                     f"({got.detail})")
                    elif not match:
                        shown = ", ".join(got.values) or got.status
                        wrong.append(f"{host}:{port} answers {qname} {check.type} with {shown}, "
                                     f"expected {', '.join(want) or 'no record'}")
                answers[f"{host}:{port}"] = per
            if not wrong:
                return Result(outputs={"ok": True, "attempts": attempts, "answers": answers},
                              changed=False)
            if ctx.clock.monotonic() >= deadline:
                more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
                raise StepFailed(f"after {attempts} rounds in {human_seconds(params.timeout)}: "
                                 + "; ".join(wrong[:3]) + more)
            ctx.sleep(float(params.interval))
