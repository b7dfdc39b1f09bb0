"""The HTTP side of :mod:`runbook.lab.openstack_fake`: one handler routes a request by its
path prefix (``/identity``, ``/network``, ``/image``, ``/volume``, ``/load-balancer``) to
the service, and answers in that service's JSON shapes and error bodies (the API reference
pages are cited in :mod:`runbook.lab.openstack_fake`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import socket
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from runbook.lab.openstack_fake import (
    _CREATE,
    NEUTRON,
    ApiError,
    Json,
    OpenStackFake,
    _advance,
    _batch_members,
    _get,
    _image,
    _neutron_delete,
    _now,
    _router_interface,
    _volume,
)

Reply = tuple[int, Any, dict[str, str]]


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


class Handler(BaseHTTPRequestHandler):
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
                                                  self.headers.get("X-Auth-Token"),
                                                  self.headers.get("Content-Type", ""))
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
           raw: bytes, token: str | None, content_type: str = "") -> Reply:
    if path.endswith("/file") and method == "PUT" \
            and content_type.split(";")[0].strip() != "application/octet-stream":
        # Glance takes image data only as application/octet-stream.
        raise ApiError(415, f"Unsupported Media Type: {content_type or 'none'}",
                       "Unsupported Media Type")
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
    project = body["auth"].get("scope", {}).get("project", {})
    if project.get("name", cloud.project_name) != cloud.project_name and \
            project.get("id") != cloud.project_id:
        raise ApiError(401, "The request you have made requires authentication.",
                       "Unauthorized")
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
