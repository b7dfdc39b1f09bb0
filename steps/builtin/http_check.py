"""``http.check``: an HTTP endpoint answers as expected, optionally retried until a deadline."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from runbook.api import (
    Action,
    Duration,
    Plan,
    Result,
    Secret,
    Step,
    StepContext,
    StepFailed,
    param,
    reveal,
)


@dataclass(frozen=True)
class HttpCheckParams:
    url: str = param(doc="URL to request")
    method: str = param("GET", doc="HTTP method")
    status: list[int] = param(factory=lambda: [200], doc="acceptable status codes")
    contains: str | None = param(None, doc="text the body must contain")
    headers: dict[str, str] = param(factory=dict, doc="request headers")
    username: str | None = param(None, doc="basic auth user")
    password: Secret | None = param(None, doc="basic auth password (secret reference)")
    timeout: Duration = param(Duration(10), doc="per-request timeout")
    until: Duration | None = param(None, doc="keep trying for this long before failing")
    interval: Duration = param(Duration(2), doc="pause between tries")
    insecure: bool = param(False, doc="skip TLS certificate verification")


class HttpCheck(Step[HttpCheckParams]):
    """Request a URL until it answers with an expected status (and text), or give up."""

    Params = HttpCheckParams
    idempotent = True
    outputs = ("status", "attempts")

    def plan(self, params: HttpCheckParams, facts: dict[str, Any] | None) -> Plan:
        want = "/".join(str(s) for s in params.status)
        extra = f" containing {params.contains!r}" if params.contains else ""
        return Plan.of(Action.read(f"{params.method} {params.url} expecting {want}{extra}"))

    def apply(self, ctx: StepContext, params: HttpCheckParams, plan: Plan) -> Result:
        deadline = ctx.clock.monotonic() + (params.until or 0)
        attempts = 0
        while True:
            attempts += 1
            status, problem = self._probe(params)
            if problem is None:
                return Result(outputs={"status": status, "attempts": attempts}, changed=False)
            if ctx.clock.monotonic() >= deadline:
                raise StepFailed(f"{params.method} {params.url}: {problem} "
                                 f"(after {attempts} attempt{'s' if attempts > 1 else ''})")
            ctx.sleep(params.interval)

    def _probe(self, params: HttpCheckParams) -> tuple[int, str | None]:
        headers = {k: str(reveal(v)) for k, v in params.headers.items()}
        if params.username is not None:
            pw = reveal(params.password) if params.password is not None else ""
            token = base64.b64encode(f"{params.username}:{pw}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(params.url, method=params.method, headers=headers)
        context = ssl._create_unverified_context() if params.insecure else None
        try:
            with urllib.request.urlopen(request, timeout=params.timeout, context=context) as resp:
                status, body = resp.status, resp.read(1 << 20).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read(1 << 20).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return 0, f"unreachable ({reason})"
        if status not in params.status:
            return status, f"status {status}, expected {'/'.join(map(str, params.status))}"
        if params.contains is not None and params.contains not in body:
            return status, f"body does not contain {params.contains!r}"
        return status, None
