"""The OpenStack client the ``openstack.*`` steps use, over openstacksdk.

:class:`Cloud` is the small interface the steps need, in plain dicts with Neutron's body
names; :class:`SdkCloud` implements it with openstacksdk. Tests run it against
``runbook.lab.openstack_fake``, so the SDK's own request building is exercised.

Only this module imports openstacksdk; ``steps.openstack.step`` imports it lazily.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from runbook.api import MissingDependency, StepFailed, reveal

try:
    import keystoneauth1.exceptions as ks_exc
    import openstack
    import openstack.config
    import openstack.exceptions as os_exc
    from openstack.config import exceptions as config_exc
    from openstack.image.v2.image import Image
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise MissingDependency("openstack", "openstack") from exc

Item = dict[str, Any]

NETWORK_KEYS = ("id", "name", "project_id", "description", "mtu", "admin_state_up",
                "port_security_enabled", "shared", "router:external")
SUBNET_KEYS = ("id", "name", "project_id", "network_id", "description", "cidr", "ip_version",
               "gateway_ip", "enable_dhcp", "dns_nameservers", "allocation_pools",
               "host_routes")
RULE_KEYS = ("id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
             "remote_ip_prefix", "remote_group_id", "description")
IMAGE_KEYS = ("id", "name", "status", "size", "checksum", "os_hash_algo", "os_hash_value",
              "disk_format", "container_format")
# Ports that join a subnet to a router: plain, distributed (DVR) and HA routers.
ROUTER_PORT_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                      "network:ha_router_replicated_interface")
VOLUME_KEYS = ("id", "name", "status", "size", "volume_type", "availability_zone",
               "bootable")


class Cloud(Protocol):
    """What the steps ask of a cloud. Deletions return False when the thing was gone."""

    name: str
    project_id: str

    def network_state(self) -> dict[str, list[Item]]: ...
    def create(self, kind: str, attrs: Item) -> str: ...
    def update(self, kind: str, rid: str, attrs: Item) -> None: ...
    def delete(self, kind: str, rid: str) -> bool: ...
    def add_interface(self, router_id: str, subnet_id: str) -> None: ...
    def remove_interface(self, router_id: str, subnet_id: str) -> bool: ...
    def images(self, name: str) -> list[Item]: ...
    def get_image(self, image_id: str) -> Item | None: ...
    def create_image(self, name: str, disk_format: str, container_format: str,
                     properties: dict[str, str]) -> Item: ...
    def upload_image(self, image_id: str, path: str) -> None: ...
    def delete_image(self, image_id: str) -> bool: ...
    def volumes(self, name: str) -> list[Item]: ...
    def get_volume(self, volume_id: str) -> Item | None: ...
    def create_volume(self, attrs: Item) -> Item: ...
    def delete_volume(self, volume_id: str) -> bool: ...


@contextlib.contextmanager
def guard(cloud: str, what: str) -> Iterator[None]:
    """Turn SDK and keystoneauth errors into one clear sentence (no secrets in them)."""
    try:
        yield
    except (ks_exc.ClientException, os_exc.SDKException,
            config_exc.OpenStackConfigException) as exc:
        raise StepFailed(_sentence(exc, cloud, what)) from None


def _sentence(exc: BaseException, cloud: str, what: str) -> str:
    # The SDK wraps keystoneauth's errors, so look down the whole chain for the cause.
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    if any(isinstance(e, ks_exc.Unauthorized) or getattr(e, "status_code", None) == 401
           for e in chain):
        return (f"cloud '{cloud}' refused the credentials while trying to {what}; check the "
                "user, password and project in its clouds.yaml entry")
    if any(isinstance(e, (ks_exc.ConnectFailure, ks_exc.ConnectTimeout,
                          ks_exc.DiscoveryFailure)) for e in chain):
        return (f"cloud '{cloud}' cannot be reached while trying to {what}: no identity "
                "service answered at its auth_url; check auth_url and the network path")
    detail = getattr(exc, "details", None) or str(exc).splitlines()[0]
    return f"cloud '{cloud}' failed to {what}: {detail}"


def connect(settings: dict[str, Any], label: str) -> SdkCloud:
    """Connect from a target's ``openstack`` mapping: ``cloud`` (a clouds.yaml entry),
    optional ``clouds_yaml`` (its path; default: the usual clouds.yaml locations),
    ``region_name``, or an explicit ``auth`` mapping (its password as a secret reference)."""
    name = str(settings.get("cloud") or label)
    with guard(name, "connect"):
        if settings.get("auth"):
            conn = openstack.connect(auth=reveal(settings["auth"]),
                                     region_name=settings.get("region_name"),
                                     auth_type=settings.get("auth_type", "password"))
        else:
            files = [str(settings["clouds_yaml"])] if settings.get("clouds_yaml") else None
            config = openstack.config.OpenStackConfig(config_files=files) if files \
                else openstack.config.OpenStackConfig()
            region = config.get_one(cloud=name, region_name=settings.get("region_name"))
            conn = openstack.connection.Connection(config=region)
        conn.authorize()  # fail here, once, with a clear message, rather than mid-way
        return SdkCloud(conn, name)


def _plain(resource: Any, keys: tuple[str, ...]) -> Item:
    body = resource.to_dict(computed=False, original_names=True)
    return {k: body.get(k) for k in keys}


class SdkCloud:
    """:class:`Cloud` over an ``openstack.connection.Connection``."""

    def __init__(self, conn: Any, name: str) -> None:
        self.conn = conn
        self.name = name
        self.project_id: str = conn.current_project_id

    def network_state(self) -> dict[str, list[Item]]:
        """The project's networks (plus the external and shared networks it may refer
        to), subnets, routers (with the subnets they are attached to) and security groups
        (with rules), as plain data.

        Everything is filtered by project: with an admin account Neutron lists every
        project's resources, and every project has a security group named ``default``.
        """
        net = self.conn.network
        mine = {"project_id": self.project_id}
        with guard(self.name, "list network resources"):
            networks: dict[str, Item] = {}
            for query in (mine, {"is_router_external": True}, {"is_shared": True}):
                networks.update({n.id: _plain(n, NETWORK_KEYS) for n in net.networks(**query)})
            subnets = [_plain(s, SUBNET_KEYS) for s in net.subnets(**mine)]
            attached: dict[str, list[str]] = {}
            for owner in ROUTER_PORT_OWNERS:
                for port in net.ports(device_owner=owner, **mine):
                    attached.setdefault(port.device_id, []).extend(
                        ip["subnet_id"] for ip in port.fixed_ips or [])
            routers = []
            for r in net.routers(**mine):
                item = _plain(r, ("id", "name", "project_id", "description", "admin_state_up"))
                item["external_network_id"] = (r.external_gateway_info or {}).get("network_id")
                item["interface_subnet_ids"] = sorted(set(attached.get(r.id, [])))
                routers.append(item)
            groups = []
            for g in net.security_groups(**mine):
                item = _plain(g, ("id", "name", "project_id", "description"))
                item["rules"] = [{k: rule.get(k) for k in RULE_KEYS}
                                 for rule in g.security_group_rules or []]
                groups.append(item)
        return {"networks": sorted(networks.values(), key=lambda n: str(n["name"])),
                "subnets": subnets, "routers": routers, "security_groups": groups}

    def create(self, kind: str, attrs: Item) -> str:
        net = self.conn.network
        makers = {"network": net.create_network, "subnet": net.create_subnet,
                  "router": net.create_router, "security group": net.create_security_group,
                  "security group rule": net.create_security_group_rule}
        with guard(self.name, f"create {kind} {attrs.get('name', '')}".rstrip()):
            return str(makers[kind](**attrs).id)

    def update(self, kind: str, rid: str, attrs: Item) -> None:
        net = self.conn.network
        updaters = {"network": net.update_network, "subnet": net.update_subnet,
                    "router": net.update_router,
                    "security group": net.update_security_group}
        with guard(self.name, f"update {kind} {rid}"):
            updaters[kind](rid, **attrs)

    def delete(self, kind: str, rid: str) -> bool:
        net = self.conn.network
        deleters = {"network": net.delete_network, "subnet": net.delete_subnet,
                    "router": net.delete_router,
                    "security group": net.delete_security_group,
                    "security group rule": net.delete_security_group_rule}
        with guard(self.name, f"delete {kind} {rid}"):
            try:
                deleters[kind](rid, ignore_missing=False)
            except os_exc.NotFoundException:
                return False
        return True

    def add_interface(self, router_id: str, subnet_id: str) -> None:
        with guard(self.name, f"attach subnet {subnet_id} to router {router_id}"):
            # The Router resource methods send the body as given (stable across SDK versions).
            router = self.conn.network.get_router(router_id)
            router.add_interface(self.conn.network, subnet_id=subnet_id)

    def remove_interface(self, router_id: str, subnet_id: str) -> bool:
        with guard(self.name, f"detach subnet {subnet_id} from router {router_id}"):
            try:
                router = self.conn.network.get_router(router_id)
                router.remove_interface(self.conn.network, subnet_id=subnet_id)
            except os_exc.NotFoundException:
                return False
        return True

    def images(self, name: str) -> list[Item]:
        with guard(self.name, f"list images named {name}"):
            return [_plain(i, IMAGE_KEYS) for i in self.conn.image.images(name=name)]

    def get_image(self, image_id: str) -> Item | None:
        with guard(self.name, f"read image {image_id}"):
            try:
                return _plain(self.conn.image.get_image(image_id), IMAGE_KEYS)
            except os_exc.NotFoundException:
                return None

    def create_image(self, name: str, disk_format: str, container_format: str,
                     properties: dict[str, str]) -> Item:
        # The record first, the data second: the id is checkpointed in between, so an
        # upload that dies midway still leaves something revert can find and delete.
        with guard(self.name, f"create image {name}"):
            image = Image.new(name=name, disk_format=disk_format,
                              container_format=container_format, **properties)
            return _plain(image.create(self.conn.image), IMAGE_KEYS)

    def upload_image(self, image_id: str, path: str) -> None:
        with guard(self.name, f"upload data to image {image_id}"), open(path, "rb") as data:
            image = self.conn.image.get_image(image_id)
            image.data = data
            os_exc.raise_from_response(image.upload(self.conn.image))

    def delete_image(self, image_id: str) -> bool:
        with guard(self.name, f"delete image {image_id}"):
            try:
                self.conn.image.delete_image(image_id, ignore_missing=False)
            except os_exc.NotFoundException:
                return False
        return True

    def volumes(self, name: str) -> list[Item]:
        with guard(self.name, f"list volumes named {name}"):
            return [_plain(v, VOLUME_KEYS) | {"image_id": _image_of(v)}
                    for v in self.conn.block_storage.volumes(name=name)]

    def get_volume(self, volume_id: str) -> Item | None:
        with guard(self.name, f"read volume {volume_id}"):
            try:
                volume = self.conn.block_storage.get_volume(volume_id)
            except os_exc.NotFoundException:
                return None
            return _plain(volume, VOLUME_KEYS) | {"image_id": _image_of(volume)}

    def create_volume(self, attrs: Item) -> Item:
        with guard(self.name, f"create volume {attrs.get('name')}"):
            return _plain(self.conn.block_storage.create_volume(**attrs), VOLUME_KEYS)

    def delete_volume(self, volume_id: str) -> bool:
        with guard(self.name, f"delete volume {volume_id}"):
            try:
                self.conn.block_storage.delete_volume(volume_id, ignore_missing=False)
            except os_exc.NotFoundException:
                return False
        return True


def _image_of(volume: Any) -> str | None:
    meta = volume.volume_image_metadata or {}
    return meta.get("image_id") if isinstance(meta, dict) else None
