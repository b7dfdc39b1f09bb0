"""Security group destinations moved to the new networks (no database needed)."""

from __future__ import annotations

import json

import pytest

from steps.ccdb.hostmap import HostMap, HostMapError
from steps.ccdb.netmap import NetworkMap

HOSTS = {"10.0.0.5": "10.1.0.5", "db.old.example": "db.new.example"}
NETS = {"10.0.0.0/24": "172.16.8.0/24", "fd00:1::/64": "fd00:2::/64"}


@pytest.fixture
def nm() -> NetworkMap:
    return NetworkMap(NETS, HOSTS)


@pytest.mark.parametrize("old,new", [
    ("10.0.0.5", "10.1.0.5"),                    # the host map's entry wins
    ("10.0.0.7", "172.16.8.7"),                  # same offset in the new network
    ("10.0.0.5/32", "10.1.0.5/32"),
    ("10.0.0.0/24", "172.16.8.0/24"),
    ("10.0.0.64/26", "172.16.8.64/26"),          # a subnet moves whole
    ("10.0.0.10-10.0.0.20", "172.16.8.10-172.16.8.20"),
    ("10.0.0.7,10.0.0.0/28, 10.0.0.9", "172.16.8.7,172.16.8.0/28, 172.16.8.9"),
    ("fd00:1::10", "fd00:2::10"),
    ("10.0.1.7", "10.0.1.7"),                    # outside every old network
    ("10.0.0.50", "172.16.8.50"),                # not the host entry 10.0.0.5
    ("db.old.example", "db.old.example"),        # destinations are addresses
    ("0.0.0.0/0", "0.0.0.0/0"),                  # allow-all: covers old and new
    ("0.0.0.0-9.255.255.255", "0.0.0.0-9.255.255.255"),
])
def test_destinations_move(nm: NetworkMap, old: str, new: str) -> None:
    assert nm.destination(old) == (new, [])


@pytest.mark.parametrize("partial", [
    "10.0.0.0/16",                 # wider than the old network, misses the new one
    "10.0.0.200-10.0.1.10",        # runs past the old network's end
    "9.0.0.0-10.0.0.10",
])
def test_partial_overlaps_stay_and_are_reported(nm: NetworkMap, partial: str) -> None:
    assert nm.destination(f"10.0.0.7,{partial}") == (f"172.16.8.7,{partial}", [partial])


def test_rules_json_keeps_bytes_outside_changed_destinations(nm: NetworkMap) -> None:
    rules = ('[{"protocol":"tcp","destination":"10.0.0.0/24","ports":"5432",'
             '"description":"postgres on db.old.example"},'
             '{"protocol":"icmp","destination":"10.0.0.0/16","type":0,"code":0},'
             '{"protocol":"all","destination":"192.168.0.0/16"}]')
    new, moved = nm.rewrite_rules(rules, HostMap(HOSTS))
    assert new == rules.replace('"10.0.0.0/24"', '"172.16.8.0/24"').replace(
        "db.old.example", "db.new.example")
    assert json.loads(new)[1]["destination"] == "10.0.0.0/16"
    assert moved.unresolved == ["10.0.0.0/16"]
    assert [(c.key, c.old, c.new) for c in moved.changes] == [
        ("destination", "10.0.0.0/24", "172.16.8.0/24"),
        ("description", "postgres on db.old.example", "postgres on db.new.example")]
    again, moved_again = nm.rewrite_rules(new, HostMap(HOSTS))
    assert again == new and not moved_again.changes  # idempotent


def test_without_networks_the_host_map_still_moves_single_addresses() -> None:
    nm = NetworkMap({}, HOSTS)
    rules = '[{"protocol":"tcp","destination":"10.0.0.5","ports":"3306"}]'
    new, moved = nm.rewrite_rules(rules, HostMap(HOSTS))
    assert json.loads(new)[0]["destination"] == "10.1.0.5" and not moved.unresolved


@pytest.mark.parametrize("networks,hosts,message", [
    ({"10.0.0.0/24": "10.1.0.0/23"}, {}, "both sides must be the same size"),
    ({"10.0.0.5/24": "10.1.0.0/24"}, {}, "has host bits set"),
    ({"10.0.0.0/24": "fd00::/120"}, {}, "same IP version"),
    ({"10.0.0.0/24": "10.0.1.0/24", "10.0.1.0/24": "10.0.2.0/24"}, {},
     "overlaps the old network 10.0.1.0/24"),
    ({"10.0.0.0/16": "10.9.0.0/16", "10.0.4.0/24": "10.8.4.0/24"}, {}, "overlap"),
    ({"10.0.0.0/24": "10.9.0.0/24"}, {"10.2.0.5": "10.0.0.9"}, "lies in the old network"),
    ({"nonsense": "10.1.0.0/24"}, {}, "write it like 10.0.16.0/20"),
])
def test_bad_network_maps_are_refused(networks: dict[str, str], hosts: dict[str, str],
                                      message: str) -> None:
    with pytest.raises(HostMapError, match=message):
        NetworkMap(networks, hosts)
