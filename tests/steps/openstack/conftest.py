"""Two fake clouds (source and destination) reached through the real openstacksdk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runbook.api import StepContext
from runbook.lab.openstack_fake import OpenStackFake
from runbook.testing import make_context


@dataclass
class Clouds:
    src: OpenStackFake
    dst: OpenStackFake
    clouds_yaml: Path
    targets: dict[str, Any]
    tmp: Path

    def context(self, **kwargs: Any) -> StepContext:
        return make_context(self.tmp / "run", targets=self.targets, **kwargs)

    def sdk(self, cloud: OpenStackFake) -> Any:
        """A plain SDK connection, to set up a cloud the way an operator would have."""
        import openstack.config
        import openstack.connection

        name = "old" if cloud is self.src else "new"
        config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        return openstack.connection.Connection(config=config.get_one(cloud=name))


@pytest.fixture
def clouds(tmp_path: Path) -> Iterator[Clouds]:
    with OpenStackFake(project="cf-old") as src, OpenStackFake(project="cf-new") as dst:
        for cloud in (src, dst):
            # Every cloud has a provider network, owned by the admin project.
            cloud.add("networks", name="public", project_id="admin",
                      **{"router:external": True})
        path = src.write_clouds_yaml(tmp_path / "clouds.yaml", "old", new=dst)
        targets = {"source": {"openstack": {"cloud": "old", "clouds_yaml": str(path)}},
                   "destination": {"openstack": {"cloud": "new", "clouds_yaml": str(path)}}}
        yield Clouds(src, dst, path, targets, tmp_path)


@pytest.fixture
def layout(clouds: Clouds) -> dict[str, str]:
    """The source cloud holds the network layout of a small CF foundation: one network
    with two subnets, a router to the provider network, two security groups."""
    net = clouds.sdk(clouds.src).network
    public = net.find_network("public")
    cf = net.create_network(name="cf", mtu=1400)
    z1 = net.create_subnet(network_id=cf.id, name="cf-z1", cidr="10.0.16.0/24", ip_version=4,
                           dns_nameservers=["8.8.8.8"])
    z2 = net.create_subnet(network_id=cf.id, name="cf-z2", cidr="10.0.32.0/24", ip_version=4)
    router = net.create_router(name="cf-router",
                               external_gateway_info={"network_id": public.id})
    router.add_interface(net, subnet_id=z1.id)
    router.add_interface(net, subnet_id=z2.id)
    bosh = net.create_security_group(name="cf-bosh", description="director")
    net.create_security_group_rule(security_group_id=bosh.id, direction="ingress",
                                   protocol="tcp", port_range_min=22, port_range_max=22,
                                   remote_ip_prefix="10.0.0.0/8")
    net.create_security_group_rule(security_group_id=bosh.id, direction="ingress",
                                   protocol="tcp", port_range_min=6868, port_range_max=6868,
                                   remote_group_id=bosh.id)
    web = net.create_security_group(name="cf-web", description="gorouters")
    net.create_security_group_rule(security_group_id=web.id, direction="ingress",
                                   protocol="tcp", port_range_min=80, port_range_max=80,
                                   remote_ip_prefix="0.0.0.0/0")
    return {"cf": cf.id, "router": router.id}
