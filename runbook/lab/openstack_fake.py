"""A small in-memory OpenStack on a loopback port, for tests and the lab.

It answers the calls the ``openstack.*`` steps (and LBaaS switching) make through the real
openstacksdk, with the JSON shapes of the OpenStack API reference:

* Keystone v3 -- version document and ``POST /v3/auth/tokens`` with the password method,
  returning ``X-Subject-Token`` and a token with a service catalog
  (https://docs.openstack.org/api-ref/identity/v3/#password-authentication-with-scoped-authorization).
* Neutron v2.0 -- networks, subnets, ports (read-only), routers with
  ``add_router_interface`` / ``remove_router_interface``, security groups and rules;
  a new group gets the two default egress rules, deleting something in use answers 409
  (https://docs.openstack.org/api-ref/network/v2/).
* Glance v2 -- create an image (``queued``), ``PUT /v2/images/{id}/file`` uploads the data
  (``active``, with ``checksum``, ``os_hash_algo``/``os_hash_value``), get, list, delete
  (https://docs.openstack.org/api-ref/image/v2/).
* Cinder v3 -- a volume from an image goes ``creating`` -> ``downloading`` ->
  ``available`` (or ``error``), one state per read, so tests need no clock; deleting a
  volume in a transient state answers 400 as Cinder does without ``force``
  (https://docs.openstack.org/api-ref/block-storage/v3/#volumes-volumes).
* Octavia v2 -- load balancers, pools and pool members
  (https://docs.openstack.org/api-ref/load-balancer/v2/).

Every service has a version document at its root, as keystoneauth's discovery expects.
Nothing is persisted; one instance is one cloud with one project. This module holds the
state and its rules; :mod:`runbook.lab.openstack_fake_http` speaks HTTP.

    with OpenStackFake() as cloud:
        cloud.write_clouds_yaml(path, "dest")
        conn = openstack.connect(cloud="dest")   # with OS_CLIENT_CONFIG_FILE=path
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

Json = dict[str, Any]
NEUTRON = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
           "security-groups": "security_group", "security-group-rules": "security_group_rule"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequest") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class _Server(ThreadingHTTPServer):
    # SDK sessions keep connections open; stopping must not wait for them to hang up.
    daemon_threads = True
    block_on_close = False


class OpenStackFake:
    """One fake cloud. ``start()`` binds a free loopback port and serves from a thread."""

    def __init__(self, *, username: str = "admin", password: str = "secret",
                 project: str = "demo", region: str = "RegionOne",
                 volume_reads_until_available: int = 2) -> None:
        self.username, self.password, self.project_name, self.region = (
            username, password, project, region)
        self.project_id = uuid.uuid4().hex
        self.user_id = uuid.uuid4().hex
        self.volume_reads_until_available = volume_reads_until_available
        #: volume names whose creation ends in ``error`` (to test failure handling)
        self.failing_volumes: set[str] = set()
        #: (method, path) of every request, for tests that assert what the SDK sent
        self.requests: list[tuple[str, str]] = []
        self.tokens: set[str] = set()
        #: one-shot failures: (method, path suffix) -> (status, message)
        self.failures: dict[tuple[str, str], tuple[int, str]] = {}
        self.store: dict[str, dict[str, Json]] = {name: {} for name in (
            *NEUTRON, "images", "volumes", "loadbalancers", "pools", "members")}
        self.image_data: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_default_security_group(self.project_id)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        # One handler class per fake, so two clouds can run side by side in one process.
        from runbook.lab.openstack_fake_http import Handler

        handler = type("Handler", (Handler,), {"cloud": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="openstack-fake")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def cloud_config(self) -> Json:
        """The ``clouds.yaml`` entry that reaches this cloud with password auth."""
        return {"auth": {"auth_url": self.auth_url, "username": self.username,
                         "password": self.password, "project_name": self.project_name,
                         "user_domain_name": "Default", "project_domain_name": "Default"},
                "region_name": self.region, "identity_api_version": 3}

    def write_clouds_yaml(self, path: Path, name: str, **more: OpenStackFake) -> Path:
        """Write a clouds.yaml (JSON is valid YAML) with this cloud as ``name``."""
        clouds = {name: self.cloud_config()}
        clouds.update({n: c.cloud_config() for n, c in more.items()})
        path.write_text(json.dumps({"clouds": clouds}, indent=2))
        return path

    def fail_next(self, method: str, path_suffix: str, status: int = 500,
                  message: str = "Request Failed: internal server error") -> None:
        """Make the next ``method`` request whose path ends with ``path_suffix`` fail."""
        self.failures[(method, path_suffix)] = (status, message)

    # -- seeding helpers (what exists in a cloud before a run) --------------------------

    def add(self, collection: str, **attrs: Any) -> Json:
        """Create a resource directly, e.g. a provider network owned by another project."""
        with self.lock:
            return _CREATE[collection](self, attrs)

    def add_default_security_group(self, project_id: str) -> Json:
        """Neutron gives every project a group named ``default``: egress to anywhere and
        ingress from members of the same group, for IPv4 and IPv6."""
        with self.lock:
            group = _security_group(self, {"name": "default", "project_id": project_id,
                                           "description": "Default security group"})
            for ethertype in ("IPv4", "IPv6"):
                _rule(self, {"security_group_id": group["id"], "project_id": project_id,
                             "direction": "ingress", "ethertype": ethertype,
                             "remote_group_id": group["id"]})
            return group

    def seed_network_layout(self, prefix: str = "cf", cidr_base: str = "10.0") -> Json:
        """What a foundation's project holds before a move: a network with two subnets, a
        router to the provider network ``public`` (created if missing), and two security
        groups with rules. Returns the ids by name, for the lab and for tests."""
        with self.lock:
            public = (self.find("networks", name="public") or [
                _network(self, {"name": "public", "project_id": "admin",
                                "router:external": True})])[0]
            net = _network(self, {"name": prefix, "mtu": 1400})
            ids = {prefix: net["id"]}
            router = _router(self, {"name": f"{prefix}-router",
                                    "external_gateway_info": {"network_id": public["id"]}})
            ids[router["name"]] = router["id"]
            for n, zone in enumerate(("z1", "z2"), start=1):
                sub = _subnet(self, {"name": f"{prefix}-{zone}", "network_id": net["id"],
                                     "cidr": f"{cidr_base}.{16 * n}.0/24"})
                _router_interface(self, router, "add_router_interface", {"subnet_id": sub["id"]})
                ids[sub["name"]] = sub["id"]
            for name, port, remote in (("bosh", 22, "10.0.0.0/8"), ("web", 443, "0.0.0.0/0")):
                group = _security_group(self, {"name": f"{prefix}-{name}"})
                _rule(self, {"security_group_id": group["id"], "protocol": "tcp",
                             "port_range_min": port, "port_range_max": port,
                             "remote_ip_prefix": remote})
                ids[group["name"]] = group["id"]
            return ids

    def find(self, collection: str, **match: Any) -> list[Json]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.store[collection].values()
                    if all(r.get(k) == v for k, v in match.items())]

    # -- common record fields ------------------------------------------------------------

    def _base(self, attrs: Json, **defaults: Any) -> Json:
        record: Json = {"id": str(uuid.uuid4()), "name": "", "description": "",
                        "project_id": self.project_id, "tenant_id": self.project_id,
                        "created_at": _now(), "updated_at": _now(), "revision_number": 0,
                        "tags": []}
        record.update(defaults)
        record.update({k: v for k, v in attrs.items() if v is not None or k in defaults})
        record["tenant_id"] = record["project_id"]
        return record

    def catalog(self) -> list[Json]:
        def service(kind: str, name: str, url: str) -> Json:
            return {"type": kind, "name": name, "id": uuid.uuid4().hex, "endpoints": [
                {"id": uuid.uuid4().hex, "interface": i, "region": self.region,
                 "region_id": self.region, "url": url} for i in ("public", "internal")]}
        return [service("identity", "keystone", f"{self.url}/identity"),
                service("network", "neutron", f"{self.url}/network"),
                service("image", "glance", f"{self.url}/image"),
                service("block-storage", "cinder", f"{self.url}/volume/v3/{self.project_id}"),
                service("volumev3", "cinderv3", f"{self.url}/volume/v3/{self.project_id}"),
                service("load-balancer", "octavia", f"{self.url}/load-balancer")]


# -- resource creation, shared by the HTTP API and the seeding helpers -----------------

def _network(c: OpenStackFake, a: Json) -> Json:
    a.setdefault("router:external", a.pop("is_router_external", False))
    net = c._base(a, admin_state_up=True, mtu=1450, shared=False, status="ACTIVE",
                  subnets=[], port_security_enabled=True, availability_zone_hints=[],
                  availability_zones=["nova"], ipv4_address_scope=None,
                  ipv6_address_scope=None, **{"router:external": False})
    c.store["networks"][net["id"]] = net
    return net


def _subnet(c: OpenStackFake, a: Json) -> Json:
    net = c.store["networks"].get(a.get("network_id", ""))
    if net is None:
        raise ApiError(404, f"Network {a.get('network_id')} could not be found.",
                       "NetworkNotFound")
    if not a.get("cidr"):
        raise ApiError(400, "Bad subnets request: a cidr must be given")
    for other in c.store["subnets"].values():
        if other["network_id"] == net["id"] and other["cidr"] == a["cidr"]:
            raise ApiError(400, f"Invalid input for operation: Requested subnet with cidr: "
                                f"{a['cidr']} for network: {net['id']} overlaps with "
                                f"another subnet.", "InvalidInput")
    prefix = a["cidr"].split("/")[0].rsplit(".", 1)[0]
    sub = c._base(a, ip_version=4, enable_dhcp=True, dns_nameservers=[], host_routes=[],
                  gateway_ip=f"{prefix}.1", subnetpool_id=None, ipv6_ra_mode=None,
                  ipv6_address_mode=None, service_types=[],
                  allocation_pools=[{"start": f"{prefix}.2", "end": f"{prefix}.254"}])
    c.store["subnets"][sub["id"]] = sub
    net["subnets"].append(sub["id"])
    return sub


def _router(c: OpenStackFake, a: Json) -> Json:
    gw = a.get("external_gateway_info")
    if gw and gw.get("network_id") not in c.store["networks"]:
        raise ApiError(404, f"Network {gw.get('network_id')} could not be found.",
                       "ExternalGatewayForFloatingIPNotFound")
    if gw:
        gw.setdefault("enable_snat", True)
        gw.setdefault("external_fixed_ips", [])
    router = c._base(a, admin_state_up=True, status="ACTIVE", external_gateway_info=None,
                     routes=[], distributed=False, ha=False, availability_zone_hints=[])
    c.store["routers"][router["id"]] = router
    return router


def _security_group(c: OpenStackFake, a: Json) -> Json:
    group = c._base(a, stateful=True, security_group_rules=[])
    c.store["security-groups"][group["id"]] = group
    # Neutron gives every new group an allow-all egress rule per ethertype.
    for ethertype in ("IPv4", "IPv6"):
        _rule(c, {"security_group_id": group["id"], "direction": "egress",
                  "ethertype": ethertype})
    return group


def _rule(c: OpenStackFake, a: Json) -> Json:
    group = c.store["security-groups"].get(a.get("security_group_id", ""))
    if group is None:
        raise ApiError(404, f"Security group {a.get('security_group_id')} does not exist",
                       "SecurityGroupNotFound")
    rule = c._base(a, direction="ingress", ethertype="IPv4", protocol=None,
                   port_range_min=None, port_range_max=None, remote_ip_prefix=None,
                   remote_group_id=None, remote_address_group_id=None, normalized_cidr=None)
    rule.pop("name", None)
    key = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
           "remote_ip_prefix", "remote_group_id")
    for other in group["security_group_rules"]:
        if all(other.get(k) == rule.get(k) for k in key):
            raise ApiError(409, f"Security group rule already exists. Rule id is "
                                f"{other['id']}.", "SecurityGroupRuleExists")
    c.store["security-group-rules"][rule["id"]] = rule
    group["security_group_rules"].append(rule)
    return rule


def _image(c: OpenStackFake, a: Json) -> Json:
    image = c._base(a, status="queued", visibility="shared", protected=False,
                    disk_format=None, container_format=None, size=None, virtual_size=None,
                    checksum=None, os_hash_algo=None, os_hash_value=None, min_disk=0,
                    min_ram=0, owner=c.project_id, os_hidden=False)
    for key in ("project_id", "tenant_id", "revision_number", "description"):
        image.pop(key, None)
    image.update({"self": f"/v2/images/{image['id']}", "file": f"/v2/images/{image['id']}/file",
                  "schema": "/v2/schemas/image"})
    c.store["images"][image["id"]] = image
    return image


def _volume(c: OpenStackFake, a: Json) -> Json:
    image_id = a.pop("imageRef", None)
    if image_id is not None:
        image = c.store["images"].get(image_id)
        if image is None or image["status"] != "active":
            raise ApiError(400, f"Invalid image identifier or unable to access requested "
                                f"image. Image {image_id} is not active.", "badRequest")
    if not isinstance(a.get("size"), int) or a["size"] < 1:
        raise ApiError(400, "Invalid input received: 'size' must be an integer >= 1",
                       "badRequest")
    volume = c._base(a, status="creating" if image_id else "available", bootable="false",
                     availability_zone="nova", volume_type="__DEFAULT__", attachments=[],
                     encrypted=False, multiattach=False, metadata={},
                     volume_image_metadata={"image_id": image_id} if image_id else {},
                     user_id=c.user_id, snapshot_id=None, source_volid=None,
                     consistencygroup_id=None, replication_status=None)
    for key in ("project_id", "tenant_id", "revision_number", "tags"):
        volume.pop(key, None)
    volume["os-vol-tenant-attr:tenant_id"] = c.project_id
    volume["_reads"] = 0  # internal: drives the status transitions, never sent
    c.store["volumes"][volume["id"]] = volume
    return volume


def _octavia(kind: str) -> Callable[[OpenStackFake, Json], Json]:
    def create(c: OpenStackFake, a: Json) -> Json:
        extra: Json = {"provisioning_status": "ACTIVE", "operating_status": "ONLINE",
                       "admin_state_up": True}
        if kind == "members":
            extra.update(weight=1, backup=False, monitor_address=None, monitor_port=None,
                         subnet_id=None)
        if kind == "pools":
            extra.update(members=[], lb_algorithm="ROUND_ROBIN", protocol="HTTP",
                         loadbalancers=[], listeners=[], healthmonitor_id=None,
                         session_persistence=None)
            if a.get("loadbalancer_id"):
                extra["loadbalancers"] = [{"id": a["loadbalancer_id"]}]
        record = c._base(a, **extra)
        for key in ("revision_number", "tenant_id"):
            record.pop(key, None)
        c.store[kind][record["id"]] = record
        if kind == "members":
            c.store["pools"][a["pool_id"]]["members"].append({"id": record["id"]})
        return record
    return create


_CREATE: dict[str, Callable[[OpenStackFake, Json], Json]] = {
    "networks": _network, "subnets": _subnet, "routers": _router,
    "security-groups": _security_group, "security-group-rules": _rule,
    "images": _image, "volumes": _volume, "loadbalancers": _octavia("loadbalancers"),
    "pools": _octavia("pools"), "members": _octavia("members")}



def _neutron_delete(cloud: OpenStackFake, collection: str, record: Json) -> None:
    rid = record["id"]
    ports = cloud.store["ports"].values()
    if collection == "networks" and (record["subnets"] or
                                     any(p["network_id"] == rid for p in ports)):
        raise ApiError(409, f"Unable to complete operation on network {rid}. There are one "
                            f"or more ports still in use on the network.", "NetworkInUse")
    if collection == "subnets":
        if any(ip["subnet_id"] == rid for p in ports for ip in p["fixed_ips"]):
            raise ApiError(409, f"Unable to complete operation on subnet {rid}: One or more "
                                f"ports have an IP allocation from this subnet.",
                           "SubnetInUse")
        cloud.store["networks"][record["network_id"]]["subnets"].remove(rid)
    if collection == "routers" and any(p["device_id"] == rid for p in ports):
        raise ApiError(409, f"Router {rid} still has ports", "RouterInUse")
    if collection == "security-group-rules":
        group = cloud.store["security-groups"][record["security_group_id"]]
        group["security_group_rules"] = [r for r in group["security_group_rules"]
                                         if r["id"] != rid]
    if collection == "security-groups":
        for rule in record["security_group_rules"]:
            cloud.store["security-group-rules"].pop(rule["id"], None)
    del cloud.store[collection][rid]


def _get(cloud: OpenStackFake, collection: str, rid: str, what: str) -> Json:
    record = cloud.store[collection].get(rid)
    if record is None:
        raise ApiError(404, f"{what} {rid} could not be found.", f"{what}NotFound")
    return record


def _router_interface(cloud: OpenStackFake, router: Json, action: str, body: Json) -> Json:
    ports = cloud.store["ports"]
    mine = [p for p in ports.values() if p["device_id"] == router["id"]
            and p["device_owner"] == "network:router_interface"]
    if action == "add_router_interface":
        subnet = _get(cloud, "subnets", body.get("subnet_id", ""), "Subnet")
        if any(ip["subnet_id"] == subnet["id"] for p in mine for ip in p["fixed_ips"]):
            raise ApiError(400, f"Router already has a port on subnet {subnet['id']}.",
                           "BadRequest")
        port = cloud._base({}, network_id=subnet["network_id"], device_id=router["id"],
                           device_owner="network:router_interface", status="ACTIVE",
                           admin_state_up=True, mac_address="fa:16:3e:00:00:01",
                           fixed_ips=[{"subnet_id": subnet["id"],
                                       "ip_address": subnet["gateway_ip"]}])
        ports[port["id"]] = port
    elif action == "remove_router_interface":
        found = [p for p in mine if p["id"] == body.get("port_id") or
                 any(ip["subnet_id"] == body.get("subnet_id") for ip in p["fixed_ips"])]
        if not found:
            raise ApiError(404, f"Router {router['id']} has no interface on subnet "
                                f"{body.get('subnet_id')}", "RouterInterfaceNotFoundForSubnet")
        port = found[0]
        del ports[port["id"]]
    else:
        raise ApiError(404, f"The resource could not be found: {action}", "HTTPNotFound")
    subnet_ids = [ip["subnet_id"] for ip in port["fixed_ips"]]
    return {"id": router["id"], "tenant_id": cloud.project_id, "project_id": cloud.project_id,
            "port_id": port["id"], "network_id": port["network_id"],
            "subnet_id": subnet_ids[0], "subnet_ids": subnet_ids}


def _advance(cloud: OpenStackFake, volume: Json) -> None:
    """One read moves a volume from an image one state on (no clock involved)."""
    if volume["status"] not in ("creating", "downloading"):
        return
    volume["_reads"] += 1
    if volume["_reads"] < cloud.volume_reads_until_available:
        volume["status"] = "downloading"
    elif volume["name"] in cloud.failing_volumes:
        volume["status"] = "error"
    else:
        volume.update(status="available", bootable="true")


def _batch_members(cloud: OpenStackFake, pool_id: str, wanted: list[Json]) -> None:
    """Batch update: members are matched by address and port; absent ones are deleted."""
    current = {(m["address"], m["protocol_port"]): m for m in cloud.store["members"].values()
               if m["pool_id"] == pool_id}
    keep = set()
    for spec in wanted:
        key = (spec["address"], spec["protocol_port"])
        keep.add(key)
        if key in current:
            current[key].update(spec)
        else:
            _CREATE["members"](cloud, {**spec, "pool_id": pool_id})
    pool = cloud.store["pools"][pool_id]
    for key, member in current.items():
        if key not in keep:
            del cloud.store["members"][member["id"]]
            pool["members"] = [m for m in pool["members"] if m["id"] != member["id"]]


__all__ = ["ApiError", "OpenStackFake"]
