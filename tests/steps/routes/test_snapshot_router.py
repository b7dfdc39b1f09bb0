"""routes.snapshot from gorouter ``/routes`` (a local HTTP server with basic auth)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.api import Action, StepFailed
from runbook.lab.routes_fake import FakeRouter, RouteRegistration, make_registrations
from runbook.lab.servers import free_port
from runbook.testing import make_context, make_params
from steps.routes.model import Endpoint, read_snapshot
from steps.routes.step import SnapshotRoutes

ENV = {"ROUTER_PW": "router-secret-pw", "WRONG": "not-the-password"}
REGS = make_registrations(5, endpoints_per_route=2)


@pytest.fixture
def router() -> Iterator[FakeRouter]:
    with FakeRouter(REGS, user="router", password=ENV["ROUTER_PW"]) as server:
        yield server


def targets(*urls: str) -> dict[str, object]:
    return {"source": {"routers": {"urls": list(urls), "user": "router",
                                   "password": "${env:ROUTER_PW}"}}}


def snapshot(tmp_path: Path, tgts: dict[str, object], **extra: object) -> tuple[object, object]:
    ctx = make_context(tmp_path, targets=tgts, environ=ENV, step_id="snap-old")
    params = make_params(SnapshotRoutes, {"target": "source", **extra}, environ=ENV)
    step = SnapshotRoutes()
    plan = step.plan(params, step.observe(ctx, params))
    return step.apply(ctx, params, plan), ctx


@pytest.mark.parametrize("fmt", ["current", "2015", "legacy"])
def test_snapshot_reads_every_routes_format(tmp_path: Path, fmt: str) -> None:
    with FakeRouter(REGS, user="router", password=ENV["ROUTER_PW"], fmt=fmt) as server:
        result, _ = snapshot(tmp_path, targets(server.url))
    out = result.outputs  # type: ignore[attr-defined]
    assert (out["routes"], out["endpoints"]) == (5, 10)
    assert out["apps"] == (0 if fmt != "current" else 5)  # only current bodies carry app_id
    table, meta = read_snapshot(Path(out["path"]), out["sha256"])
    assert set(table) == {f"app-{i}.apps.example.com" for i in range(5)}
    assert meta["sources"] == [{"kind": "router", "url": server.url, "routes": 5,
                                "endpoints": 10}]


def test_several_routers_are_merged(tmp_path: Path, router: FakeRouter) -> None:
    lagging = [RouteRegistration(host="10.0.9.9", port=61000, uris=("late.example.com",))]
    with FakeRouter(REGS[:4] + lagging, user="router", password=ENV["ROUTER_PW"],
                    fmt="legacy") as other:
        result, _ = snapshot(tmp_path, targets(router.url, other.url))
    out = result.outputs  # type: ignore[attr-defined]
    assert (out["routes"], out["endpoints"]) == (6, 11)
    table, _ = read_snapshot(Path(out["path"]))
    # The richer record wins when both routers know an address.
    assert table["app-0.apps.example.com"][REGS[0].address].app == REGS[0].app
    assert table["late.example.com"] == {"10.0.9.9:61000": Endpoint("10.0.9.9:61000")}


def test_outputs_and_record_hold_no_secret(tmp_path: Path, router: FakeRouter) -> None:
    result, ctx = snapshot(tmp_path, targets(router.url))
    text = repr(result.outputs) + repr(result.record)  # type: ignore[attr-defined]
    assert "router-secret-pw" not in text
    assert SnapshotRoutes().verify(ctx, None, result) is True  # type: ignore[arg-type]
    Path(result.record["path"]).write_bytes(b"tampered")  # type: ignore[attr-defined]
    assert SnapshotRoutes().verify(ctx, None, result) is False  # type: ignore[arg-type]


def test_plan_names_the_routers_and_masks_secrets(tmp_path: Path, router: FakeRouter) -> None:
    ctx = make_context(tmp_path, targets=targets(router.url), environ=ENV)
    params = make_params(SnapshotRoutes, {"target": "source"}, environ=ENV)
    plan = SnapshotRoutes().plan(params, SnapshotRoutes().observe(ctx, params))
    assert plan.actions == (
        Action.read(f"GET /routes from 1 router(s) {router.url} as router"),
        Action.read("write the compressed snapshot to the run's artifacts"))
    offline = SnapshotRoutes().plan(params, None)
    assert offline.mutation == "read-only"
    assert offline.actions[0].description == (
        "read the routing table of target 'source': GET /routes from its routers and/or "
        "listen to router.register/unregister on its NATS for two registration intervals "
        "(asked by router.greet; 40s if no router answers) (whichever it defines)")


def test_wrong_password_is_a_clear_error(tmp_path: Path, router: FakeRouter) -> None:
    tgts = targets(router.url)
    with pytest.raises(StepFailed) as failed:
        snapshot(tmp_path, tgts, router_password="${env:WRONG}")
    assert str(failed.value) == (
        f"router {router.url}/routes refused the credentials (HTTP 401); check the router "
        "status user and password (router.status.user/password) (nothing was saved)")
    assert not list((tmp_path / "artifacts").glob("*.gz"))


def test_unreachable_router_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StepFailed, match=rf"^cannot reach router {url}/routes \(.*refused.*\); "
                                         "check the URL"):
        snapshot(tmp_path, targets(url))


def test_empty_table_fails_instead_of_saving_nothing(tmp_path: Path) -> None:
    with FakeRouter([], user="router", password=ENV["ROUTER_PW"]) as server, \
            pytest.raises(StepFailed, match="captured 0 routes, fewer than min_routes 1"):
        snapshot(tmp_path, targets(server.url))


@pytest.mark.parametrize("profile, message", [
    ({}, "target 'source' defines neither routers nor nats"),
    ({"routers": {"urls": ["http://u:p@10.0.0.1:8080"]}}, "must not carry credentials"),
])
def test_bad_profiles_are_refused(tmp_path: Path, profile: dict[str, object],
                                  message: str) -> None:
    with pytest.raises(StepFailed, match=message):
        snapshot(tmp_path, {"source": profile})


def test_explicit_source_needs_its_servers(tmp_path: Path, router: FakeRouter) -> None:
    with pytest.raises(StepFailed, match="names no NATS server: set nats.servers"):
        snapshot(tmp_path, targets(router.url), source="nats")
