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
Nothing is persisted; one instance is one cloud with one project.

    with OpenStackFake() as cloud:
        cloud.write_clouds_yaml(path, "dest")
        conn = openstack.connect(cloud="dest")   # with OS_CLIENT_CONFIG_FILE=path
"""

from __future__ import annotations

import copy
import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

Json = dict[str, Any]
Reply = tuple[int, Any, dict[str, str]]

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
        handler = type("Handler", (_Handler,), {"cloud": self})
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



def _public(record: Json) -> Json:
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


def _matches(record: Json, query: dict[str, list[str]]) -> bool:
    """Neutron-style filtering: every query key that names a field must match one value."""
    for key, wanted in query.items():
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir") or key not in record:
            continue
        value = record[key]
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        if shown not in [w.lower() if isinstance(value, bool) else w for w in wanted]:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    """Routes a request to the service whose path prefix it carries."""

    cloud: OpenStackFake
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read cloud.requests instead of stderr noise

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path.rstrip("/")
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(split.query):
            query.setdefault(key, []).append(value)
        raw = self._body()
        cloud = self.cloud
        cloud.requests.append((method, path))
        try:
            with cloud.lock:
                for (verb, suffix), (code, text) in list(cloud.failures.items()):
                    if verb == method and path.endswith(suffix):
                        del cloud.failures[(verb, suffix)]
                        raise ApiError(code, text, "InternalServerError")
                status, payload, headers = _route(cloud, method, path, query, raw,
                                                  self.headers.get("X-Auth-Token"))
        except ApiError as exc:
            status, payload, headers = exc.status, _error(path, exc), {}
        except (ValueError, KeyError, TypeError) as exc:
            status, payload, headers = 400, _error(path, ApiError(400, f"bad request: {exc}")), {}
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Openstack-Request-Id", "req-" + str(uuid.uuid4()))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)


def _error(path: str, exc: ApiError) -> Json:
    """The error body each service uses (the SDK reads the message from it)."""
    if path.startswith("/network"):
        return {"NeutronError": {"type": exc.kind, "message": exc.message, "detail": ""}}
    if path.startswith("/volume"):
        key = "itemNotFound" if exc.status == 404 else "badRequest"
        return {key: {"code": exc.status, "message": exc.message}}
    if path.startswith("/load-balancer"):
        return {"faultcode": "Client", "faultstring": exc.message, "debuginfo": None}
    return {"error": {"code": exc.status, "message": exc.message, "title": exc.kind}}


def _versions(cloud: OpenStackFake, prefix: str, vid: str, suffix: str, **extra: Any) -> Json:
    link = {"rel": "self", "href": f"{cloud.url}/{prefix}/{suffix}/"}
    return {"versions": [{"id": vid, "status": "CURRENT", "links": [link], **extra}]}


def _route(cloud: OpenStackFake, method: str, path: str, query: dict[str, list[str]],
           raw: bytes, token: str | None) -> Reply:
    body: Json = json.loads(raw) if raw and not path.endswith("/file") else {}
    if path.startswith("/identity"):
        return _identity(cloud, method, path, body)
    documents = {"/network": ("network", "v2.0", "v2.0", {}),
                 "/image": ("image", "v2.15", "v2", {}),
                 "/volume": ("volume", "v3.0", "v3", {"version": "3.70", "min_version": "3.0"}),
                 "/load-balancer": ("load-balancer", "v2.27", "v2", {})}
    root = path[:-3] if path == "/volume/v3" else path  # Cinder also answers at /v3
    if root in documents and method == "GET":
        prefix, vid, suffix, extra = documents[root]
        return 200, _versions(cloud, prefix, vid, suffix, **extra), {}
    if token not in cloud.tokens:
        raise ApiError(401, "The request you have made requires authentication.",
                       "Unauthorized")
    if path.startswith("/network/v2.0/"):
        return _neutron(cloud, method, path.split("/")[3:], query, body)
    if path.startswith("/image/v2/images"):
        return _glance(cloud, method, path.split("/")[4:], query, body, raw)
    if path.startswith(f"/volume/v3/{cloud.project_id}/volumes"):
        return _cinder(cloud, method, path.split("/")[5:], query, body)
    if path.startswith(("/load-balancer/v2/lbaas/", "/load-balancer/v2.0/lbaas/")):
        # Octavia serves the same API under /v2 and under its historic /v2.0 path.
        return _octavia_api(cloud, method, path.split("/")[4:], query, body)
    raise ApiError(404, f"The resource could not be found: {method} {path}", "NotFound")


def _identity(cloud: OpenStackFake, method: str, path: str, body: Json) -> Reply:
    v3 = {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
          "links": [{"rel": "self", "href": f"{cloud.url}/identity/v3/"}],
          "media-types": [{"base": "application/json",
                           "type": "application/vnd.openstack.identity-v3+json"}]}
    if method == "GET" and path == "/identity":
        return 300, {"versions": {"values": [v3]}}, {}
    if method == "GET" and path == "/identity/v3":
        return 200, {"version": v3}, {}
    if method != "POST" or path != "/identity/v3/auth/tokens":
        raise ApiError(404, f"The resource could not be found: {path}", "Not Found")
    identity = body["auth"]["identity"]
    user = identity.get("password", {}).get("user", {})
    if "password" not in identity.get("methods", []) or user.get("name") != cloud.username \
            or user.get("password") != cloud.password:
        raise ApiError(401, "The request you have made requires authentication.",
                       "Unauthorized")
    token = uuid.uuid4().hex
    cloud.tokens.add(token)
    domain = {"id": "default", "name": "Default"}
    issued = datetime.now(UTC)
    stamp = "%Y-%m-%dT%H:%M:%S.000000Z"
    return 201, {"token": {
        "methods": ["password"], "issued_at": issued.strftime(stamp),
        "expires_at": (issued + timedelta(hours=12)).strftime(stamp),
        "user": {"id": cloud.user_id, "name": cloud.username, "domain": domain,
                 "password_expires_at": None},
        "project": {"id": cloud.project_id, "name": cloud.project_name, "domain": domain},
        "roles": [{"id": uuid.uuid4().hex, "name": "member"}],
        "catalog": cloud.catalog()}}, {"X-Subject-Token": token}


def _get(cloud: OpenStackFake, collection: str, rid: str, what: str) -> Json:
    record = cloud.store[collection].get(rid)
    if record is None:
        raise ApiError(404, f"{what} {rid} could not be found.", f"{what}NotFound")
    return record


def _neutron(cloud: OpenStackFake, method: str, parts: list[str],
             query: dict[str, list[str]], body: Json) -> Reply:
    collection = parts[0]
    if collection not in NEUTRON:
        raise ApiError(404, f"The resource could not be found: {collection}", "HTTPNotFound")
    single = NEUTRON[collection]
    what = single.title().replace("_", "")
    store = cloud.store[collection]
    if len(parts) == 1 and method == "GET":
        found = [_public(r) for r in store.values() if _matches(r, query)]
        return 200, {collection.replace("-", "_"): found}, {}
    if len(parts) == 1 and method == "POST" and collection != "ports":
        return 201, {single: _public(_CREATE[collection](cloud, dict(body[single])))}, {}
    record = _get(cloud, collection, parts[1], what)
    if len(parts) == 3 and collection == "routers" and method == "PUT":
        return 200, _router_interface(cloud, record, parts[2], body), {}
    if len(parts) != 2:
        raise ApiError(404, "The resource could not be found.", "HTTPNotFound")
    if method == "GET":
        return 200, {single: _public(record)}, {}
    if method == "PUT":
        record.update(body[single])
        record["revision_number"] += 1
        record["updated_at"] = _now()
        return 200, {single: _public(record)}, {}
    if method == "DELETE":
        _neutron_delete(cloud, collection, record)
        return 204, None, {}
    raise ApiError(405, f"{method} is not allowed here", "HTTPMethodNotAllowed")


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


def _glance(cloud: OpenStackFake, method: str, parts: list[str],
            query: dict[str, list[str]], body: Json, raw: bytes) -> Reply:
    images = cloud.store["images"]
    if not parts and method == "GET":
        found = [_public(i) for i in images.values() if _matches(i, query)]
        return 200, {"images": found, "first": "/v2/images", "schema": "/v2/schemas/images"}, {}
    if not parts and method == "POST":
        return 201, _public(_image(cloud, dict(body))), {}
    image = images.get(parts[0])
    if image is None:
        raise ApiError(404, f"No image found with ID {parts[0]}", "Not Found")
    if len(parts) == 2 and parts[1] == "file" and method == "PUT":
        if image["status"] != "queued":
            raise ApiError(409, f"Image status transition from {image['status']} to saving "
                                f"is not allowed", "Conflict")
        if not image.get("disk_format") or not image.get("container_format"):
            raise ApiError(400, "Properties disk_format, container_format must be set prior "
                                "to saving data.", "Bad Request")
        cloud.image_data[image["id"]] = raw
        image.update(status="active", size=len(raw), checksum=hashlib.md5(raw).hexdigest(),
                     os_hash_algo="sha512", os_hash_value=hashlib.sha512(raw).hexdigest(),
                     updated_at=_now())
        return 204, None, {}
    if len(parts) == 1 and method == "GET":
        return 200, _public(image), {}
    if len(parts) == 1 and method == "DELETE":
        del images[image["id"]]
        cloud.image_data.pop(image["id"], None)
        return 204, None, {}
    raise ApiError(405, f"{method} is not allowed here", "Method Not Allowed")


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


def _cinder(cloud: OpenStackFake, method: str, parts: list[str],
            query: dict[str, list[str]], body: Json) -> Reply:
    volumes = cloud.store["volumes"]
    if parts in ([], ["detail"]) and method == "GET":
        found = [v for v in volumes.values() if _matches(v, query)]
        for volume in found:
            _advance(cloud, volume)
        return 200, {"volumes": [_public(v) for v in found]}, {}
    if not parts and method == "POST":
        return 202, {"volume": _public(_volume(cloud, dict(body["volume"])))}, {}
    if parts[0] not in volumes:
        raise ApiError(404, f"Volume {parts[0]} could not be found.", "itemNotFound")
    volume = volumes[parts[0]]
    if method == "GET":
        _advance(cloud, volume)
        return 200, {"volume": _public(volume)}, {}
    if method == "DELETE":
        if volume["status"] not in ("available", "error", "error_restoring",
                                    "error_extending", "error_managing"):
            raise ApiError(400, "Invalid volume: Volume status must be available or error or "
                                "error_restoring or error_extending or error_managing and "
                                "must not be migrating, attached, belong to a group, have "
                                "snapshots or be disassociated from snapshots after volume "
                                "transfer.", "badRequest")
        del volumes[volume["id"]]
        return 202, None, {}
    raise ApiError(405, f"{method} is not allowed here", "badRequest")


def _octavia_api(cloud: OpenStackFake, method: str, parts: list[str],
                 query: dict[str, list[str]], body: Json) -> Reply:
    kind = parts[0]
    if kind not in ("loadbalancers", "pools"):
        raise ApiError(404, f"The resource could not be found: {kind}")
    if len(parts) >= 3 and kind == "pools" and parts[2] == "members":
        _get(cloud, "pools", parts[1], "Pool")
        query = {**query, "pool_id": [parts[1]]}
        kind, parts = "members", ["members", *parts[3:]]
    single = kind[:-1]
    store = cloud.store[kind]
    if len(parts) == 1 and method == "GET":
        found = [_public(r) for r in store.values() if _matches(r, query)]
        return 200, {kind: found, f"{kind}_links": []}, {}
    if len(parts) == 1 and method == "POST":
        attrs = dict(body[single])
        if kind == "members":
            attrs["pool_id"] = query["pool_id"][0]
        return 201, {single: _public(_CREATE[kind](cloud, attrs))}, {}
    if len(parts) == 1 and method == "PUT" and kind == "members":
        _batch_members(cloud, query["pool_id"][0], body["members"])
        return 202, None, {}
    record = _get(cloud, kind, parts[1], single.title())
    if method == "GET":
        return 200, {single: _public(record)}, {}
    if method == "PUT":
        record.update(body[single])
        record["updated_at"] = _now()
        return 200, {single: _public(record)}, {}
    if method == "DELETE":
        del store[record["id"]]
        if kind == "members":
            pool = cloud.store["pools"][record["pool_id"]]
            pool["members"] = [m for m in pool["members"] if m["id"] != record["id"]]
        return 204, None, {}
    raise ApiError(405, f"{method} is not allowed here")


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
