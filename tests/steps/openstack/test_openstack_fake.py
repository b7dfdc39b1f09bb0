"""The lab's OpenStack fake answers the real openstacksdk the way the API reference says."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openstack.exceptions
import pytest

from runbook.lab.openstack_fake import OpenStackFake


def test_keystone_catalog_lists_every_service(clouds: Any) -> None:
    conn = clouds.sdk(clouds.dst)
    conn.authorize()
    kinds = {e["type"] for e in conn.service_catalog}
    assert {"identity", "network", "image", "block-storage", "load-balancer"} <= kinds
    assert conn.current_project_id == clouds.dst.project_id
    assert ("POST", "/identity/v3/auth/tokens") in clouds.dst.requests


def test_requests_without_a_token_are_refused(clouds: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{clouds.dst.url}/network/v2.0/networks")
    assert caught.value.code == 401


def test_neutron_refuses_to_delete_what_is_in_use(clouds: Any) -> None:
    net = clouds.sdk(clouds.dst).network
    cf = net.create_network(name="cf")
    subnet = net.create_subnet(network_id=cf.id, name="z1", cidr="10.1.0.0/24", ip_version=4)
    router = net.create_router(name="r")
    router.add_interface(net, subnet_id=subnet.id)
    with pytest.raises(openstack.exceptions.ConflictException):
        net.delete_network(cf)
    with pytest.raises(openstack.exceptions.ConflictException):
        net.delete_router(router)
    router.remove_interface(net, subnet_id=subnet.id)
    net.delete_router(router)
    net.delete_subnet(subnet)
    net.delete_network(cf)
    assert clouds.dst.find("networks", name="cf") == []


def test_new_security_groups_get_the_default_egress_rules(clouds: Any) -> None:
    net = clouds.sdk(clouds.dst).network
    group = net.create_security_group(name="g")
    rules = list(net.security_group_rules(security_group_id=group.id))
    assert sorted((r.direction, r.ether_type) for r in rules) == [("egress", "IPv4"),
                                                                   ("egress", "IPv6")]
    with pytest.raises(openstack.exceptions.ConflictException):
        net.create_security_group_rule(security_group_id=group.id, direction="egress",
                                       ethertype="IPv4")


def test_glance_upload_and_cinder_transitions(clouds: Any) -> None:
    conn = clouds.sdk(clouds.dst)
    image = conn.image.create_image(name="img", data=b"x" * 1000, disk_format="raw",
                                    container_format="bare")
    assert conn.image.get_image(image.id).status == "active"
    volume = conn.block_storage.create_volume(size=1, image_id=image.id, name="v")
    assert volume.status == "creating"
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.block_storage.delete_volume(volume)  # Cinder: not while creating
    seen = [conn.block_storage.get_volume(volume.id).status for _ in range(3)]
    assert seen == ["downloading", "available", "available"]
    conn.block_storage.delete_volume(volume)
    assert conn.block_storage.find_volume("v") is None


def test_octavia_pool_members(clouds: Any) -> None:
    lb = clouds.sdk(clouds.dst).load_balancer
    balancer = lb.create_load_balancer(name="gw", vip_subnet_id="s")
    pool = lb.create_pool(name="routers", loadbalancer_id=balancer.id, protocol="HTTP",
                          lb_algorithm="ROUND_ROBIN")
    old = lb.create_member(pool, address="10.0.0.5", protocol_port=80)
    lb.create_member(pool, address="10.0.0.6", protocol_port=80)
    lb.update_member(old, pool, weight=0)
    assert {(m.address, m.weight) for m in lb.members(pool)} == {("10.0.0.5", 0),
                                                                ("10.0.0.6", 1)}
    lb.delete_member(old, pool)
    assert [m.address for m in lb.members(pool)] == ["10.0.0.6"]


def test_clouds_yaml_holds_a_working_profile(tmp_path: Any) -> None:
    with OpenStackFake(username="u", password="p4ssw0rd") as cloud:
        text = cloud.write_clouds_yaml(tmp_path / "clouds.yaml", "lab").read_text()
        auth = json.loads(text)["clouds"]["lab"]["auth"]
        assert auth["auth_url"] == f"{cloud.url}/identity/v3"
        assert (auth["username"], auth["password"]) == ("u", "p4ssw0rd")


def test_every_project_has_a_default_security_group(clouds: Any) -> None:
    net = clouds.sdk(clouds.dst).network
    (group,) = [g for g in net.security_groups() if g.name == "default"]
    assert sorted((r["direction"], r["ethertype"], r["remote_group_id"])
                  for r in group.security_group_rules) == [
        ("egress", "IPv4", None), ("egress", "IPv6", None),
        ("ingress", "IPv4", group.id), ("ingress", "IPv6", group.id)]


def test_glance_takes_image_data_only_as_octet_stream(clouds: Any) -> None:
    conn = clouds.sdk(clouds.dst)
    conn.authorize()
    image = conn.image.create_image(name="img", disk_format="raw", container_format="bare",
                                    allow_duplicates=True, data=b"x")
    queued = clouds.dst.add("images", name="q", disk_format="raw", container_format="bare")
    request = urllib.request.Request(
        f"{clouds.dst.url}/image/v2/images/{queued['id']}/file", data=b"data", method="PUT",
        headers={"X-Auth-Token": conn.auth_token, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 415
    assert clouds.dst.find("images", id=image.id)[0]["status"] == "active"


def test_a_token_is_only_given_for_the_cloud_s_project(clouds: Any) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": clouds.dst.username, "password": clouds.dst.password,
        "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "another", "domain": {"name": "Default"}}}}}
    request = urllib.request.Request(f"{clouds.dst.url}/identity/v3/auth/tokens",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 401
