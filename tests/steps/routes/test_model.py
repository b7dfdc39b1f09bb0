"""The routing-table model: every /routes era, registry messages, the snapshot file."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.lab.routes_fake import RouteRegistration, routes_body
from steps.routes.model import (
    Endpoint,
    SnapshotError,
    parse_registration,
    read_snapshot,
    route_key,
    table_from_routes_body,
    write_snapshot,
)

REG = RouteRegistration(host="10.0.16.4", port=61012, uris=("Dora.Example.com", "dora.example.com/api/"),
                        app="app-1", private_instance_id="i-1", availability_zone="z1",
                        tags={"component": "route-emitter", "app_id": "app-1"})


def test_route_keys_ignore_host_case_and_trailing_slash() -> None:
    assert route_key("Dora.Example.COM") == "dora.example.com"
    assert route_key("dora.example.com/") == "dora.example.com"
    assert route_key("Dora.example.com/API/v1/") == "dora.example.com/API/v1"


def test_current_routes_body_keeps_app_tls_and_route_service() -> None:
    reg = RouteRegistration(host="10.0.16.5", port=61001, tls_port=61443, uris=("a.example.com",),
                            app="app-2", route_service_url="https://rs.example.com",
                            tags={"component": "route-emitter", "app_id": "app-2"})
    table = table_from_routes_body(routes_body([reg], "current"))
    assert table == {"a.example.com": {"10.0.16.5:61443": Endpoint(
        "10.0.16.5:61443", "app-2", True, "", "https://rs.example.com", "", "http1")}}


def test_legacy_and_2015_bodies_give_addresses_only() -> None:
    legacy = table_from_routes_body({"app.example.com": ["10.0.16.4:61012"]})
    assert legacy == {"app.example.com": {"10.0.16.4:61012": Endpoint("10.0.16.4:61012")}}
    old = table_from_routes_body(routes_body([REG], "2015"))
    assert set(old) == {"dora.example.com", "dora.example.com/api"}
    assert old["dora.example.com"]["10.0.16.4:61012"] == Endpoint("10.0.16.4:61012")


@pytest.mark.parametrize("body, message", [
    ([], "not a JSON object"),
    ({"a.example.com": "10.0.0.1:80"}, "does not hold a list"),
    ({"a.example.com": [{"ttl": 120}]}, "endpoint without an address"),
])
def test_unreadable_routes_bodies_are_refused(body: object, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        table_from_routes_body(body)


def test_registration_tls_port_wins_over_port() -> None:
    msg = {"host": "10.0.0.9", "port": 8080, "tls_port": 8443, "uris": ["x.example.com"],
           "app": "a"}
    reg = parse_registration(json.dumps(msg).encode())
    assert reg is not None
    assert reg.endpoint.address == "10.0.0.9:8443" and reg.endpoint.tls is True


def test_registration_like_a_2014_dea_is_accepted() -> None:
    dea = {"dea": "0-abc", "app": "app-9", "uris": ["old.example.com"], "host": "10.0.0.7",
           "port": 61001, "tags": {"component": "dea-0"}, "private_instance_id": "p"}
    reg = parse_registration(json.dumps(dea).encode())
    assert reg is not None
    assert reg.uris == ("old.example.com",)
    assert reg.endpoint == Endpoint("10.0.0.7:61001", "app-9", False, "p", "", "", "")


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"host": "10.0.0.1", "uris": ["a"]}',
    b'{"host": "10.0.0.1", "port": 80, "uris": ["a"], "route_service_url": "http://rs"}',
])
def test_registrations_gorouter_would_reject_are_rejected(payload: bytes) -> None:
    assert parse_registration(payload) is None


def test_snapshot_round_trip_is_versioned_compressed_and_reproducible(tmp_path: Path) -> None:
    table = table_from_routes_body(routes_body([REG], "current"))
    first = write_snapshot(tmp_path / "a.json.gz", table, {"captured_at": "t"})
    second = write_snapshot(tmp_path / "b.json.gz", dict(reversed(table.items())),
                            {"captured_at": "t"})
    assert first == second  # sorted content, no gzip timestamp
    doc = json.loads(gzip.decompress((tmp_path / "a.json.gz").read_bytes()))
    assert (doc["format"], doc["version"]) == ("paas-runbook/routes-snapshot", 1)
    loaded, meta = read_snapshot(tmp_path / "a.json.gz", first)
    assert loaded == table and meta["captured_at"] == "t"


def test_snapshot_reader_refuses_other_versions_and_changed_files(tmp_path: Path) -> None:
    path = tmp_path / "s.json.gz"
    write_snapshot(path, {}, {})
    with pytest.raises(SnapshotError, match="does not match the recorded sha256"):
        read_snapshot(path, "0" * 64)
    doc = {"format": "paas-runbook/routes-snapshot", "version": 99, "routes": []}
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(SnapshotError, match="has format version 99; this version reads "
                                            "version 1"):
        read_snapshot(path)
    path.write_bytes(b"plain")
    with pytest.raises(SnapshotError, match="is not a gzip-compressed JSON file"):
        read_snapshot(path)
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        read_snapshot(tmp_path / "absent.json.gz")


def test_step_module_imports_no_integration_library() -> None:
    code = ("import sys, steps.routes.step as s; "
            "bad = [m for m in ('nats', 'steps.routes.nats_client', 'steps.routes.model') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_replaying_the_last_event_per_payload_equals_applying_every_message() -> None:
    from steps.routes.nats_client import Capture, EventLog

    rng = random.Random(7)
    # Few addresses and URIs, several payloads per address: plenty of collisions.
    payloads = [RouteRegistration(host=f"10.0.0.{rng.randint(1, 3)}", port=61000,
                                  uris=tuple(rng.sample(["a.example.com", "b.example.com",
                                                         "c.example.com"], rng.randint(1, 2))),
                                  app=f"app-{rng.randint(1, 3)}").payload() for _ in range(8)]
    for _ in range(200):
        events = [(rng.random() < 0.7, rng.choice(payloads)) for _ in range(rng.randint(1, 30))]
        expected: dict[str, dict[str, Endpoint]] = {}
        for registering, data in events:  # what gorouter does, message by message
            reg = parse_registration(data)
            assert reg is not None
            for uri in reg.uris:
                if registering:
                    expected.setdefault(uri, {})[reg.endpoint.address] = reg.endpoint
                elif uri in expected:
                    expected[uri].pop(reg.endpoint.address, None)
                    if not expected[uri]:
                        del expected[uri]
        log = EventLog()
        for registering, data in events:
            (log.register if registering else log.unregister)(data)
        capture = Capture()
        log.replay(capture)
        assert capture.table == expected
        assert capture.registers + capture.unregisters == len(events)
