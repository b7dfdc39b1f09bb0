"""OpenStack LBaaS (Octavia) pool members through openstacksdk.

Calls used, per the openstacksdk load_balancer v2 proxy: ``find_pool``, ``members(pool)``,
``create_member(pool, address=, protocol_port=, ...)``, ``delete_member(member, pool)``
and ``wait_for_load_balancer`` (Octavia answers 409 to a change while the load balancer
is ``PENDING_UPDATE``, so every change waits for ``ACTIVE`` before the next).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from runbook.api import MissingDependency, StepFailed


@dataclass(frozen=True)
class Member:
    id: str
    address: str
    protocol_port: int
    weight: int = 1
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "address": self.address, "protocol_port": self.protocol_port,
                "weight": self.weight, "name": self.name}


class Pool(Protocol):
    def members(self) -> list[Member]: ...
    def add(self, address: str, port: int, weight: int, name: str) -> Member: ...
    def remove(self, member_id: str) -> None: ...


class OctaviaPool:
    """A pool, found by name or id, in the cloud named in clouds.yaml."""

    def __init__(self, cloud: str, pool: str, *, wait: int = 300, interval: int = 2) -> None:
        try:
            import openstack
            import openstack.exceptions
        except ImportError:
            raise MissingDependency("openstack", "openstack") from None
        self._errors = openstack.exceptions
        try:
            self._conn = openstack.connect(cloud=cloud)
            self._pool = self._conn.load_balancer.find_pool(pool, ignore_missing=False)
        except openstack.exceptions.SDKException as exc:
            raise StepFailed(f"cannot reach load balancer pool '{pool}' in cloud '{cloud}': "
                             f"{_short(exc)}; check clouds.yaml and the pool name") from None
        self._lbs = [lb["id"] for lb in (self._pool.loadbalancers or [])]
        self._wait, self._interval = wait, interval

    @property
    def id(self) -> str:
        return str(self._pool.id)

    def members(self) -> list[Member]:
        return [Member(str(m.id), str(m.address), int(m.protocol_port), int(m.weight or 1),
                       str(m.name or "")) for m in self._conn.load_balancer.members(self._pool)]

    def add(self, address: str, port: int, weight: int, name: str) -> Member:
        self._settle()
        try:
            made = self._conn.load_balancer.create_member(
                self._pool, address=address, protocol_port=port, weight=weight, name=name)
        except self._errors.SDKException as exc:
            raise StepFailed(f"adding {address}:{port} to the pool failed: {_short(exc)}"
                             ) from None
        self._settle()
        return Member(str(made.id), address, port, weight, name)

    def remove(self, member_id: str) -> None:
        self._settle()
        try:
            self._conn.load_balancer.delete_member(member_id, self._pool, ignore_missing=True)
        except self._errors.SDKException as exc:
            raise StepFailed(f"removing member {member_id} from the pool failed: "
                             f"{_short(exc)}") from None
        self._settle()

    def _settle(self) -> None:
        for lb in self._lbs:
            self._conn.load_balancer.wait_for_load_balancer(lb, interval=self._interval,
                                                            wait=self._wait)


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
