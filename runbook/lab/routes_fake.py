"""Route publishers and a gorouter-compatible ``/routes`` server, on loopback.

This is a stand-in for parts of Cloud Foundry's routing tier, not the real thing. It
follows the documented shapes (see the project's Cloud Foundry reference, section 3):

* :class:`FakeRouter` serves ``GET /routes`` with HTTP basic auth like gorouter's routes
  listener (``router/routes_listener.go``): a JSON object keyed by route URI whose values
  list endpoints, either as objects (``route/pool.go`` ``Endpoint.MarshalJSON``:
  ``address``, ``availability_zone``, ``protocol``, ``tls``, ``ttl``, ``tags``, ...), as the
  2015 objects (``address``, ``ttl``, ``route_service_url``), or as the bare ``"ip:port"``
  strings gorouter sent before 2015-06-25.
* :class:`RouteEmitter` publishes ``router.register`` like Diego's route-emitter
  (``routingtable/registry_message.go``: ``host``, ``port``, ``tls_port``, ``uris``,
  ``app``, ``private_instance_id``, ``tags.component = "route-emitter"``, ...) once per
  interval, sends ``router.unregister`` when an instance goes or moves, and re-emits
  everything when it sees ``router.start``. Because the lab runs no gorouter, it can also
  answer ``router.greet`` the way gorouter does (a ``router.start`` document with
  ``minimumRegisterIntervalInSeconds``) and then re-emit at once, so a capture need not
  wait a whole interval.

Usable from tests, benchmarks and the lab; imports nats-py (the engine never imports this).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

RoutesFormat = Literal["current", "2015", "legacy"]


@dataclass(frozen=True)
class RouteRegistration:
    """One app instance (or component) registering its URIs at one address."""

    host: str
    port: int
    uris: tuple[str, ...]
    app: str = ""
    tls_port: int = 0
    private_instance_id: str = ""
    route_service_url: str = ""
    availability_zone: str = ""
    protocol: str = "http1"
    tags: dict[str, str] = field(default_factory=lambda: {"component": "route-emitter"})

    @property
    def address(self) -> str:
        return f"{self.host}:{self.tls_port or self.port}"

    def message(self) -> dict[str, Any]:
        # route-emitter leaves empty fields out (omitempty), except host, port and uris.
        msg: dict[str, Any] = {"host": self.host, "port": self.port, "uris": list(self.uris)}
        for key in ("tls_port", "app", "private_instance_id", "route_service_url",
                    "availability_zone", "protocol", "tags"):
            value = getattr(self, key)
            if value:
                msg[key] = value
        return msg

    def payload(self) -> bytes:
        return json.dumps(self.message(), separators=(",", ":")).encode()


def make_registrations(routes: int, *, endpoints_per_route: int = 2,
                       domain: str = "apps.example.com", network: str = "10.0",
                       seed: int = 0) -> list[RouteRegistration]:
    """A deterministic foundation: one app per route, ``endpoints_per_route`` instances."""
    rng = random.Random(seed)
    regs = []
    for i in range(routes):
        app = str(uuid.UUID(int=rng.getrandbits(128)))
        for j in range(endpoints_per_route):
            cell = (i * endpoints_per_route + j) % 60000
            regs.append(RouteRegistration(
                host=f"{network}.{cell // 250}.{cell % 250 + 1}", port=61000 + (i + j) % 4000,
                uris=(f"app-{i}.{domain}",), app=app,
                private_instance_id=str(uuid.UUID(int=rng.getrandbits(128))),
                availability_zone=f"z{j % 3 + 1}",
                tags={"component": "route-emitter", "app_id": app}))
    return regs


def routes_body(registrations: Iterable[RouteRegistration], fmt: RoutesFormat = "current"
                ) -> dict[str, list[Any]]:
    """What gorouter's ``/routes`` would return for these registrations, in ``fmt``."""
    body: dict[str, list[Any]] = {}
    for reg in registrations:
        for uri in reg.uris:
            if fmt == "legacy":
                entry: Any = reg.address
            elif fmt == "2015":
                entry = {"address": reg.address, "ttl": 120}
                if reg.route_service_url:
                    entry["route_service_url"] = reg.route_service_url
            else:
                entry = {"address": reg.address, "availability_zone": reg.availability_zone,
                         "protocol": reg.protocol, "tls": bool(reg.tls_port), "ttl": 120,
                         "tags": dict(reg.tags)}
                for key in ("route_service_url", "private_instance_id"):
                    if getattr(reg, key):
                        entry[key] = getattr(reg, key)
            body.setdefault(uri, []).append(entry)
    return body


class FakeRouter:
    """``GET /routes`` with basic auth on a loopback port; ``.url`` is the base URL."""

    def __init__(self, registrations: Iterable[RouteRegistration] = (), *,
                 user: str = "router-status", password: str = "router-status-pw",
                 fmt: RoutesFormat = "current") -> None:
        self.user, self.password, self.fmt = user, password, fmt
        self._body = b""
        self.requests = 0
        self.set_registrations(registrations)
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def set_registrations(self, registrations: Iterable[RouteRegistration]) -> None:
        self._body = json.dumps(routes_body(registrations, self.fmt)).encode()

    def __enter__(self) -> Self:
        router = self
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                router.requests += 1
                if self.path.rstrip("/") != "/routes":
                    self._send(404, b"404 page not found\n", "text/plain")
                elif self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm=""')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(200, router._body, "application/json")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class RouteEmitter:
    """Publishes registrations to NATS every ``interval`` seconds from a background thread."""

    def __init__(self, servers: str | list[str], registrations: Iterable[RouteRegistration] = (),
                 *, interval: float = 20.0, user: str | None = None,
                 password: str | None = None, token: str | None = None,
                 answer_greet: bool = True, router_id: str = "0-lab-router") -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.registrations: dict[tuple[str, str], RouteRegistration] = {}
        for reg in registrations:
            self.registrations[(reg.address, reg.uris[0] if reg.uris else "")] = reg
        self.interval, self.answer_greet, self.router_id = interval, answer_greet, router_id
        self._auth = {"user": user, "password": password, "token": token}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._nc: Any = None
        self._ticker: asyncio.Task[None] | None = None
        self.rounds = 0  # full emissions so far
        self.greets = 0  # router.greet requests answered
        self._round_done = threading.Condition()

    # -- lifecycle --
    def __enter__(self) -> Self:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        import nats

        self._nc = await nats.connect(self.servers, name="lab route-emitter", **self._auth)
        await self._nc.subscribe("router.start", cb=self._on_router_start)
        if self.answer_greet:
            await self._nc.subscribe("router.greet", cb=self._on_greet)
        await self._nc.flush()
        self._ticker = asyncio.create_task(self._tick())

    async def _stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._nc is not None:
            await self._nc.drain()

    async def _tick(self) -> None:
        while True:
            await self._emit_all()
            await asyncio.sleep(self.interval)

    async def _emit_all(self) -> None:
        for key, reg in list(self.registrations.items()):
            # An unregister may run between two publishes: never re-announce what it removed.
            if self.registrations.get(key) is reg:
                await self._nc.publish("router.register", reg.payload())
        await self._nc.flush()
        with self._round_done:
            self.rounds += 1
            self._round_done.notify_all()

    async def _on_router_start(self, msg: Any) -> None:
        await self._emit_all()  # a (re)started router gets the full table at once

    async def _on_greet(self, msg: Any) -> None:
        start = {"id": self.router_id, "hosts": ["127.0.0.1"],
                 "minimumRegisterIntervalInSeconds": max(1, round(self.interval)),
                 "pruneThresholdInSeconds": 120}
        if msg.reply:
            await self._nc.publish(msg.reply, json.dumps(start).encode())
        with self._round_done:
            self.greets += 1
            self._round_done.notify_all()
        await self._emit_all()

    # -- what tests and the lab drive --
    def wait_rounds(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` full emissions happened."""
        with self._round_done:
            if not self._round_done.wait_for(lambda: self.rounds >= count, timeout):
                raise TimeoutError(f"only {self.rounds} emissions after {timeout}s")

    def wait_greeted(self, count: int = 1, timeout: float = 30.0) -> None:
        """Block until ``count`` router.greet requests were answered (a capture is listening)."""
        with self._round_done:
            if not self._round_done.wait_for(lambda: self.greets >= count, timeout):
                raise TimeoutError(f"only {self.greets} greetings after {timeout}s")

    def emit_now(self) -> None:
        self._call(self._emit_all())

    def register(self, reg: RouteRegistration) -> None:
        self._call(self._publish("router.register", reg))

    def unregister(self, reg: RouteRegistration) -> None:
        self._call(self._publish("router.unregister", reg))

    def move(self, reg: RouteRegistration, host: str, port: int) -> RouteRegistration:
        """An instance moved (evacuated, restarted elsewhere): register new, then drop old."""
        moved = replace(reg, host=host, port=port,
                        tls_port=port if reg.tls_port else 0)
        self.register(moved)
        self.unregister(reg)
        return moved

    async def _publish(self, subject: str, reg: RouteRegistration) -> None:
        # The table changes on the loop thread, so a periodic emission sees it atomically.
        key = (reg.address, reg.uris[0] if reg.uris else "")
        if subject == "router.register":
            self.registrations[key] = reg
        else:
            self.registrations.pop(key, None)
        await self._nc.publish(subject, reg.payload())
        await self._nc.flush()


def publish_burst(servers: str | list[str], payloads: list[bytes], *,
                  user: str | None = None, password: str | None = None,
                  token: str | None = None, rate: float | None = None) -> float:
    """Publish ``payloads`` on ``router.register`` as fast as possible (or at ``rate`` per
    second); returns the seconds it took. For benchmarks."""
    import time

    async def run() -> float:
        import nats

        nc = await nats.connect(servers, user=user, password=password, token=token,
                                pending_size=64 * 1024 * 1024, flusher_queue_size=65536)
        started = time.perf_counter()
        batch = 1000
        for i in range(0, len(payloads), batch):
            for data in payloads[i:i + batch]:
                await nc.publish("router.register", data)
            if rate is not None:
                ahead = (i + batch) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await nc.flush(timeout=60)
        took = time.perf_counter() - started
        await nc.close()
        return took

    return asyncio.run(run())
