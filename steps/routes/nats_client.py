"""Capture the routing table from NATS: listen to ``router.register`` / ``router.unregister``.

Every route publisher (Diego route-emitter, route-registrar, DEA in old foundations)
re-sends each registration once per registration interval, so listening for two
intervals sees every live endpoint at least once. ``router.greet`` is a request the
gorouters answer with their ``router.start`` document, whose
``minimumRegisterIntervalInSeconds`` is the interval the publishers use; asking first
sizes the listening time to the foundation instead of to a guess.

Imported lazily by the step: nats-py is an optional dependency.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from runbook.api import MissingDependency
from steps.routes.model import Table, gc_paused, parse_registration


class NatsUnavailable(Exception):
    """NATS could not be used; the message says why, without credentials."""


@dataclass(frozen=True)
class NatsSettings:
    servers: list[str]
    user: str | None = None
    password: str | None = None
    token: str | None = None
    connect_timeout: float = 5.0


@dataclass
class Capture:
    """What one listening session saw."""

    table: Table = field(default_factory=dict)
    registers: int = 0
    unregisters: int = 0
    rejected: int = 0  # distinct payloads gorouter would refuse too (no host/port, ...)
    dropped: int = 0  # messages NATS dropped because this client fell behind
    routers: list[dict[str, Any]] = field(default_factory=list)  # router.greet answers
    interval: float = 0.0
    listened: float = 0.0


class EventLog:
    """The hot path of a capture: remember the last event of each distinct payload.

    Publishers repeat identical payloads every interval, so keeping only the last event
    per payload (with its sequence number) is cheap per message and bounded by the
    table's size. Replaying those events in sequence order gives the same table as
    applying every message in turn: an endpoint's final state is set by the last message
    naming it, and that message is the last event of its own payload.
    """

    def __init__(self) -> None:
        self.last: dict[bytes, int] = {}  # payload -> +seq (register) or -seq (unregister)
        self.seq = 0
        self.unregisters = 0

    def register(self, data: bytes) -> None:
        self.seq += 1
        self.last[data] = self.seq

    def unregister(self, data: bytes) -> None:
        self.seq += 1
        self.unregisters += 1
        self.last[data] = -self.seq

    def replay(self, capture: Capture) -> None:
        """Apply the remembered events to ``capture.table`` in the order they arrived."""
        capture.registers = self.seq - self.unregisters
        capture.unregisters = self.unregisters
        table = capture.table
        with gc_paused():
            for data, seq in sorted(self.last.items(), key=lambda item: abs(item[1])):
                registration = parse_registration(data)
                if registration is None:
                    capture.rejected += 1
                    continue
                endpoint = registration.endpoint
                for uri in registration.uris:
                    endpoints = table.get(uri)
                    if seq > 0:
                        if endpoints is None:
                            table[uri] = {endpoint.address: endpoint}
                        else:
                            endpoints[endpoint.address] = endpoint
                    elif endpoints is not None:
                        endpoints.pop(endpoint.address, None)
                        if not endpoints:
                            del table[uri]
        self.last.clear()


class NatsRouteSource:
    """The real client (nats-py). ``capture`` blocks; it runs its own event loop."""

    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings

    def capture(self, *, duration: float | None, default_interval: float, greet: bool,
                greet_wait: float, cancelled: threading.Event) -> Capture:
        return asyncio.run(self._capture(duration, default_interval, greet, greet_wait,
                                         cancelled))

    async def _connect(self, errors: list[BaseException], capture: Capture) -> Any:
        try:
            import nats
            import nats.errors
        except ImportError:
            raise MissingDependency("nats", "nats") from None

        async def on_error(exc: Exception) -> None:
            # nats-py reports every message it had to drop; count those, keep the rest.
            if isinstance(exc, nats.errors.SlowConsumerError):
                capture.dropped += 1
            else:
                errors[:] = [*errors[-4:], exc]

        s = self.settings
        try:
            return await nats.connect(
                s.servers, user=s.user, password=s.password, token=s.token,
                connect_timeout=max(1, int(s.connect_timeout)), allow_reconnect=False,
                max_reconnect_attempts=1, reconnect_time_wait=0.2, error_cb=on_error,
                name="paas-runbook routes.snapshot", pending_size=8 * 1024 * 1024)
        except nats.errors.NoServersError:
            last = errors[-1] if errors else "no answer"
            raise NatsUnavailable(f"cannot reach NATS at {', '.join(s.servers)} ({last}); "
                                  "check the server URLs and that this host may connect "
                                  "to port 4222") from None
        except nats.errors.Error as exc:
            text = str(exc)
            if "authorization" in text.lower():
                raise NatsUnavailable(f"NATS at {', '.join(s.servers)} refused the "
                                      "credentials (Authorization Violation); check the nats "
                                      "user/password or token") from None
            raise NatsUnavailable(f"NATS at {', '.join(s.servers)}: {text}") from None
        except (TimeoutError, OSError) as exc:
            raise NatsUnavailable(f"cannot reach NATS at {', '.join(s.servers)} ({exc})") \
                from None

    async def _capture(self, duration: float | None, default_interval: float, greet: bool,
                       greet_wait: float, cancelled: threading.Event) -> Capture:
        errors: list[BaseException] = []
        capture = Capture()
        nc = await self._connect(errors, capture)
        events = EventLog()
        try:
            async def on_register(msg: Any) -> None:
                events.register(msg.data)

            async def on_unregister(msg: Any) -> None:
                events.unregister(msg.data)

            # Generous pending limits: a burst of registrations is buffered, not dropped.
            limits = {"pending_msgs_limit": 4_000_000, "pending_bytes_limit": 1 << 30}
            await nc.subscribe("router.register", cb=on_register, **limits)
            await nc.subscribe("router.unregister", cb=on_unregister, **limits)
            await nc.flush()
            started = time.monotonic()
            if greet:
                capture.routers = await _greet(nc, greet_wait)
            advertised = [r["minimumRegisterIntervalInSeconds"] for r in capture.routers
                          if isinstance(r.get("minimumRegisterIntervalInSeconds"), int)]
            capture.interval = float(max(advertised)) if advertised else default_interval
            total = duration if duration is not None else 2 * capture.interval
            while (left := total - (time.monotonic() - started)) > 0:
                if cancelled.is_set():
                    break
                if not nc.is_connected:
                    raise NatsUnavailable("the NATS connection was lost during the capture "
                                          f"({errors[-1] if errors else 'closed'}); the "
                                          "snapshot would be incomplete, run the step again")
                await asyncio.sleep(min(0.1, left))
            capture.listened = time.monotonic() - started
            await nc.flush()
        finally:
            # drain() lets the callbacks finish what was already delivered.
            try:
                await nc.drain()
            except Exception:  # noqa: BLE001 - closing must not hide the capture's outcome
                await nc.close()
        events.replay(capture)
        return capture


async def _greet(nc: Any, wait: float) -> list[dict[str, Any]]:
    """Ask every gorouter for its ``router.start`` document; collect answers for ``wait``."""
    answers: list[dict[str, Any]] = []

    async def on_answer(msg: Any) -> None:
        try:
            doc = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(doc, dict):
            answers.append(doc)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_answer)
    await nc.publish("router.greet", b"", reply=inbox)
    await nc.flush()
    await asyncio.sleep(wait)
    await sub.unsubscribe()
    return answers
