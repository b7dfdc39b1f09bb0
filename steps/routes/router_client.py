"""Read a gorouter's routing table from its ``/routes`` endpoint (HTTP basic auth).

Current gorouters serve it on a localhost-only listener (``router.status.routes.port``,
default 8082); older ones served it beside ``/varz`` on the status port (default 8080).
Either way the URL given here is the router's base URL (``/routes`` is appended when
missing), so the runbook works through an ssh tunnel or on the router VM itself.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Protocol

from steps.routes.model import SnapshotError, Table, table_from_routes_body


class RouterUnavailable(Exception):
    """The router could not be read; the message says why, without credentials."""


class RouterClient(Protocol):
    def fetch(self, url: str) -> Table: ...


def routes_url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/routes") else base + "/routes"


class HttpRouterClient:
    """The real client: one GET per router with basic auth."""

    def __init__(self, user: str | None, password: str | None, timeout: float) -> None:
        self._auth: str | None = None
        if user is not None:
            token = f"{user}:{password or ''}".encode()
            self._auth = "Basic " + base64.b64encode(token).decode()
        self._timeout = timeout

    def fetch(self, url: str) -> Table:
        target = routes_url(url)
        request = urllib.request.Request(target, headers={"Accept": "application/json"})
        if self._auth is not None:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise RouterUnavailable(
                    f"router {target} refused the credentials (HTTP 401); check the "
                    "router status user and password (router.status.user/password)") from None
            raise RouterUnavailable(f"router {target} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RouterUnavailable(f"cannot reach router {target} ({reason}); check the "
                                    "URL and that its routes listener is reachable "
                                    "from here") from None
        try:
            return table_from_routes_body(json.loads(raw))
        except ValueError as exc:  # SnapshotError is a ValueError, and so is bad JSON
            detail = exc if isinstance(exc, SnapshotError) else "the body is not JSON"
            raise RouterUnavailable(f"router {target} sent an unreadable routing table: "
                                    f"{detail}") from None
