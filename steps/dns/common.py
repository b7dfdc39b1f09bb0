"""Parameters and helpers shared by the zone-editing DNS steps.

Imports only the standard library and ``runbook.api`` (the engine imports step modules
to check ``with:`` during ``runbook validate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from runbook.api import Duration, Secret, StepContext, StepFailed, TargetRef, param
from steps.dns.record import Rec
from steps.dns.zone import Provider, ZoneClient, ZoneState, open_client


@dataclass(frozen=True, kw_only=True)
class ZoneParams:
    provider: Provider = param("powerdns-db", doc="'powerdns-db' (BOSH PowerDNS tables) or "
                                                   "'rfc2136' (signed dynamic update)")
    target: TargetRef = param(doc="target whose 'powerdns' (dsn) or 'dns' (server, port, "
                                  "tsig_key_name, tsig_algorithm, tsig_secret) key is used")
    dsn: Secret | None = param(None, doc="PowerDNS database DSN, overrides the target's")
    server: str | None = param(None, doc="RFC 2136 server address, overrides the target's")
    port: int | None = param(None, doc="RFC 2136 server port, overrides the target's")
    timeout: Duration = param(Duration(10), doc="per connection / per DNS message")
    flush_command: list[str] | None = param(
        None, doc="command run after every change, e.g. the powerdns job's 'powerdns_ctl "
                  "flush', so cached answers go")


@contextmanager
def client_for(ctx: StepContext, params: ZoneParams) -> Iterator[ZoneClient]:
    client = open_client(params.provider, ctx.target(params.target), dsn=params.dsn,
                         server=params.server, port=params.port, timeout=float(params.timeout))
    try:
        yield client
    finally:
        client.close()


def flush(ctx: StepContext, params: ZoneParams) -> None:
    if not params.flush_command:
        return
    done = ctx.run(list(params.flush_command), timeout=float(params.timeout) * 6)
    if done.returncode != 0:
        raise StepFailed(f"{' '.join(params.flush_command)} exited {done.returncode}: the DNS "
                         "change is made but the server may answer from its cache until its "
                         f"TTL passes; see {ctx.log_dir.name}/{ctx.safe_step_id}.log")


def flush_line(params: ZoneParams) -> list[str]:
    return [f"run {' '.join(params.flush_command)}"] if params.flush_command else []


def state_facts(state: ZoneState) -> dict[str, Any]:
    return {"exists": state.exists, "domain_id": state.domain_id, "last_id": state.last_id,
            "records": [r.to_dict() for r in state.records]}


def state_from(facts: dict[str, Any]) -> ZoneState:
    return ZoneState("", exists=bool(facts["exists"]),
                     records=[Rec.from_dict(r) for r in facts["records"]],
                     domain_id=facts.get("domain_id"), last_id=facts.get("last_id"))
