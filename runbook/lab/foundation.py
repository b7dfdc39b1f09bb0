"""What the lab's mini-foundation holds, and the small moving parts that make it react.

The reference runbooks (``runbooks/cf-vcloud-to-openstack.yml`` and
``runbooks/openstack-to-openstack.yml``) name the facts of the foundation they move in
their ``vars``: the two system domains, the service hosts the Cloud Controller DB points
at and the addresses they move to, the new stack's DNS answers. The lab is seeded with
exactly these facts, so a rehearsal proves the runbook against data shaped like the real
thing. Only connection details (ports, paths, secrets) differ, and those come from the
lab's ``targets``.

:class:`RouteFollower` makes the routing tier follow the simulated directors: a side's
routers publish their routes (NATS ``router.register`` and ``/routes``) only while that
side's ``router`` group (and, on the new stack, the health manager that restarts the apps)
runs, which is how the new stack's routing table appears once ``bosh.start`` brings it up.
:class:`DiskWriter` keeps changing the old disks while their jobs run, so the final sync
has a delta. :class:`DbResponder` answers DNS questions from the PowerDNS tables when no
``pdns_server`` is installed.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any, Self

OLD_DOMAIN = "a9s.eu"  # the system domain customers know (seeds/000)
NEW_DOMAIN = "a9sapp.eu"  # the parallel stack's own domain until the move
# Service nodes the apps' credentials point at, old -> new (runbook var ccdb_hosts).
SERVICE_HOSTS = {"10.0.16.30": "10.1.16.30", "10.0.16.31": "10.1.16.31",
                 "10.0.16.32": "10.1.16.32", "10.0.16.33": "10.1.16.33"}
# Their networks, old -> new: security group destinations move (runbook var service_networks).
SERVICE_NETWORKS = {"10.0.16.0/24": "10.1.16.0/24"}
# The new stack's BOSH PowerDNS answers (runbook var new_stack_dns).
NEW_STACK_DNS = {"api": "10.1.16.50", "uaa": "10.1.16.51", "login": "10.1.16.51"}
NEW_WILDCARD = "10.1.16.60"
NEW_NS = "10.1.16.2"
APPS = 300  # "several hundred live apps": rows in the Cloud Controller DB
ROUTES = APPS  # one route per app, two instances each
# A side's apps are routable while these groups run: its routers, and (new stack) the
# health manager that restarts every app once the Cloud Controller is back (seeds/000).
ROUTABLE_WHEN = {"source": ("router",), "destination": ("router", "hm9000")}
DISKS = {"cc_db": 24, "uaa_db": 8, "nfs_server": 40}  # files per persistent disk


def registrations(side: str) -> list[Any]:
    """The app instances as one side's routers see them: same apps and instance ids, the
    new side's cells on 10.1.x.x (routes.compare matches endpoints by app, not address)."""
    from runbook.lab.routes_fake import make_registrations

    return make_registrations(ROUTES, domain=OLD_DOMAIN,
                              network="10.0" if side == "source" else "10.1", seed=9)


def fill_disks(root: Path) -> list[dict[str, str]]:
    """Source disks with a little data, empty destination directories; the disk list of
    ``disks.sync`` (local paths, as the lab runs no sshd)."""
    disks = []
    for name, files in DISKS.items():
        src, dst = root / "source" / name, root / "destination" / name
        (src / "data").mkdir(parents=True, exist_ok=True)
        dst.mkdir(parents=True, exist_ok=True)
        for i in range(files):
            (src / "data" / f"{name}-{i:03d}.dat").write_bytes(bytes([i % 251]) * 4096 * (i + 1))
        disks.append({"name": name, "source": str(src) + "/", "destination": str(dst) + "/"})
    return disks


class RouteFollower:
    """Publishes each side's routes while its director runs the groups that make its apps
    routable (:data:`ROUTABLE_WHEN`)."""

    def __init__(self, sides: dict[str, tuple[Any, Any, Any, list[Any]]],
                 deployment: str = "cf", interval: float = 0.2) -> None:
        # side -> (BoshSim, FakeRouter, RouteEmitter, registrations)
        self.sides = sides
        self.deployment = deployment
        self.interval = interval
        self.live: dict[str, bool] = {side: False for side in sides}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="lab-routes")

    def routable(self, side: str, sim: Any) -> bool:
        try:
            dep = sim.state()["deployments"].get(self.deployment)
        except (OSError, ValueError):  # the simulator is replacing its file right now
            return self.live[side]
        instances = (dep or {}).get("instances", [])
        for name in ROUTABLE_WHEN.get(side, ("router",)):
            group = [i for i in instances if i["group"] == name]
            if not group or not all(i["state"] == "started" and i["vm_cid"] for i in group):
                return False
        return True

    def sync(self) -> None:
        for side, (sim, router, emitter, regs) in self.sides.items():
            running = self.routable(side, sim)
            if running == self.live[side]:
                continue
            # A starting router announces everything; a stopping one stops announcing and
            # its routes age out (here: vanish at once from /routes and the emitter).
            router.set_registrations(regs if running else [])
            for reg in regs:
                (emitter.register if running else emitter.unregister)(reg)
            self.live[side] = running

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception:  # noqa: BLE001, S112 - a lab hiccup must not end the lab
                continue

    def __enter__(self) -> Self:
        self.sync()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class DiskWriter:
    """Keeps writing to the source disks while their jobs run, as a live database does,
    so the final ``disks.sync`` inside the window has a real delta to copy."""

    def __init__(self, sim: Any, disks_root: Path, deployment: str = "cf",
                 interval: float = 0.5) -> None:
        self.sim, self.root, self.deployment, self.interval = sim, disks_root, deployment, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="lab-disks")
        self.writes = 0

    def _running(self) -> set[str]:
        try:
            dep = self.sim.state()["deployments"].get(self.deployment) or {}
        except (OSError, ValueError):
            return set()
        return {i["group"] for i in dep.get("instances", [])
                if i["state"] == "started" and i["vm_cid"]}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            running = self._running()
            for name in DISKS:
                if name in running:
                    with (self.root / "source" / name / "data" / "journal.log").open("a") as f:
                        f.write(f"{name} write {self.writes}\n")
                    self.writes += 1

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class DbResponder:
    """A tiny authoritative DNS server over UDP that answers from the PowerDNS tables.

    Stands in for ``pdns_server`` when Debian's PowerDNS is not installed: it reads the
    same ``records`` rows on every question (no cache), answers A/AAAA/CNAME/NS/SOA and
    ``*.`` wildcards, REFUSED for names outside every domain. Not a DNS server to rely on.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True, name="lab-dns")

    def _lookup(self, conn: Any, name: str, rtype: str) -> tuple[bool, list[tuple[str, int]]]:
        domains = [r[0] for r in conn.execute("SELECT name FROM domains").fetchall()]
        if not any(name == d or name.endswith("." + d) for d in domains):
            return False, []
        rows = conn.execute("SELECT content, ttl FROM records WHERE name = %s AND type = %s",
                            (name, rtype)).fetchall()
        if not rows and "." in name:
            wildcard = "*." + name.split(".", 1)[1]
            rows = conn.execute("SELECT content, ttl FROM records WHERE name = %s AND "
                                "type = %s", (wildcard, rtype)).fetchall()
        return True, [(str(r[0]), int(r[1] or 60)) for r in rows]

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rrset
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while True:
                try:
                    wire, peer = self._sock.recvfrom(4096)
                except OSError:
                    return
                try:
                    query = dns.message.from_wire(wire)
                    reply = dns.message.make_response(query)
                    question = query.question[0]
                    name = question.name.to_text(omit_final_dot=True).lower()
                    rtype = dns.rdatatype.to_text(question.rdtype)
                    known, answers = self._lookup(conn, name, rtype)
                    if not known:
                        reply.set_rcode(dns.rcode.REFUSED)
                    else:
                        reply.flags |= dns.flags.AA
                        for content, ttl in answers:
                            if rtype == "SOA":
                                content = " ".join(_soa_fields(content))
                            reply.answer.append(dns.rrset.from_text(
                                question.name, ttl, "IN", rtype, content))
                    self._sock.sendto(reply.to_wire(), peer)
                except Exception:  # noqa: BLE001, S112 - a bad packet must not end the server
                    continue

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def _soa_fields(content: str) -> list[str]:
    # BOSH wrote SOA rows with six or seven fields and a mail-style contact; DNS wants
    # seven fields and the contact as a name.
    fields = content.split()
    if len(fields) > 1:
        fields[1] = fields[1].replace("@", ".", 1)
    while len(fields) < 7:
        fields.append("30")
    return [f if i > 1 or f.endswith(".") else f + "." for i, f in enumerate(fields)]
