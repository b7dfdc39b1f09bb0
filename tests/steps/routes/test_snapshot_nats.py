"""routes.snapshot from a real nats-server with route-emitter-like publishers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook.api import Action, StepCancelled, StepFailed
from runbook.lab.routes_fake import FakeRouter, RouteEmitter, RouteRegistration, make_registrations
from runbook.lab.servers import Nats, ServerUnavailable, free_port
from runbook.testing import make_context, make_params
from steps.routes.model import read_snapshot
from steps.routes.step import SnapshotRoutes
from tests.conftest import missing

ENV = {"NATS_PW": "nats-secret-pw", "NATS_TOKEN": "nats-secret-token", "BAD": "wrong-password"}
REGS = make_registrations(6, endpoints_per_route=2)


@pytest.fixture
def auth_nats() -> Iterator[Nats]:
    try:
        with Nats(user="nats", password=ENV["NATS_PW"]) as server:
            yield server
    except ServerUnavailable as exc:
        missing(str(exc))


def nats_target(url: str, **auth: str) -> dict[str, Any]:
    return {"source": {"nats": {"servers": [url], **auth}}}


def prepare(tmp_path: Path, tgts: dict[str, Any], values: dict[str, Any]) -> tuple[Any, Any]:
    ctx = make_context(tmp_path, targets=tgts, environ=ENV, step_id="snap")
    return ctx, make_params(SnapshotRoutes, {"target": "source", **values}, environ=ENV)


def run(ctx: Any, params: Any) -> dict[str, Any]:
    step = SnapshotRoutes()
    result = step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
    assert result.changed is False
    return result.outputs


def test_periodic_registrations_are_captured(tmp_path: Path, auth_nats: Nats) -> None:
    tgts = nats_target(auth_nats.url, user="nats", password="${env:NATS_PW}")
    with RouteEmitter(auth_nats.url, REGS, interval=0.3, user="nats", password=ENV["NATS_PW"],
                      answer_greet=False):
        ctx, params = prepare(tmp_path, tgts, {"duration": "1s", "greet": False})
        out = run(ctx, params)
    assert (out["routes"], out["endpoints"], out["apps"]) == (6, 12, 6)
    assert out["nats"]["registers"] >= 24  # every endpoint re-registered at least twice
    assert out["nats"]["rejected"] == 0 and out["nats"]["routers_answered"] == 0
    table, _ = read_snapshot(Path(out["path"]), out["sha256"])
    assert table["app-0.apps.example.com"][REGS[0].address].instance_id == \
        REGS[0].private_instance_id
    assert "nats-secret-pw" not in repr(out)


def test_greet_sizes_the_listening_time_and_hurries_the_emitter(tmp_path: Path,
                                                               nats_server: Nats) -> None:
    # An interval far beyond the test: only the answer to router.greet brings the routes.
    with RouteEmitter(nats_server.url, REGS, interval=600, answer_greet=True) as emitter:
        emitter.wait_rounds(1)
        emitter.interval = 1  # what the lab router advertises from now on
        ctx, params = prepare(tmp_path, nats_target(nats_server.url), {"greet_wait": "0.2s"})
        out = run(ctx, params)
    assert out["nats"]["routers_answered"] == 1 and out["nats"]["interval_seconds"] == 1.0
    assert out["nats"]["listened_seconds"] >= 2.0  # two advertised intervals
    assert out["routes"] == 6


def test_unregister_and_a_moving_route_are_followed(tmp_path: Path, nats_server: Nats) -> None:
    gone, moving = REGS[0], REGS[2]
    with RouteEmitter(nats_server.url, REGS, interval=0.2) as emitter:
        ctx, params = prepare(tmp_path, nats_target(nats_server.url),
                              {"duration": "1.5s", "greet_wait": "0.1s"})
        outputs: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: outputs.update(run(ctx, params)))
        worker.start()
        emitter.wait_greeted()  # the capture listens from here on
        emitter.unregister(gone)
        moved = emitter.move(moving, "10.9.9.9", 62000)
        worker.join(timeout=30)
    table, _ = read_snapshot(Path(outputs["path"]))
    assert gone.address not in table["app-0.apps.example.com"]
    assert list(table["app-0.apps.example.com"]) == [REGS[1].address]
    assert set(table["app-1.apps.example.com"]) == {moved.address, REGS[3].address}
    assert outputs["endpoints"] == 11 and outputs["nats"]["unregisters"] == 2


def test_token_auth_and_rejected_registrations(tmp_path: Path) -> None:
    bad = RouteRegistration(host="10.0.0.1", port=80, uris=("rs.example.com",),
                            route_service_url="http://not-https.example.com")
    try:
        server = Nats(token=ENV["NATS_TOKEN"]).__enter__()
    except ServerUnavailable as exc:
        missing(str(exc))
    try:
        with RouteEmitter(server.url, REGS[:2] + [bad], interval=0.2, token=ENV["NATS_TOKEN"]):
            ctx, params = prepare(tmp_path, nats_target(server.url, token="${env:NATS_TOKEN}"),
                                  {"duration": "0.8s", "greet_wait": "0.1s"})
            out = run(ctx, params)
    finally:
        server.__exit__(None, None, None)
    assert out["routes"] == 1 and out["nats"]["rejected"] >= 1


def test_router_and_nats_are_merged(tmp_path: Path, nats_server: Nats) -> None:
    extra = RouteRegistration(host="10.0.5.5", port=8080, uris=("api.sys.example.com",))
    with FakeRouter(REGS[:4] + [extra], user="r", password="router-pw", fmt="legacy") as router, \
            RouteEmitter(nats_server.url, REGS, interval=0.2):
        tgts = {"source": {"nats": {"servers": [nats_server.url]},
                           "routers": {"urls": [router.url], "user": "r",
                                       "password": "${env:ROUTER_PW}"}}}
        ctx = make_context(tmp_path, targets=tgts, environ={"ROUTER_PW": "router-pw"})
        params = make_params(SnapshotRoutes, {"target": "source", "duration": "0.6s",
                                              "greet_wait": "0.1s"})
        out = run(ctx, params)
    assert [s["kind"] for s in out["sources"]] == ["router", "nats"]
    assert (out["routes"], out["endpoints"], out["apps"]) == (7, 13, 6)


def test_plan_shows_servers_auth_and_duration(tmp_path: Path, auth_nats: Nats) -> None:
    ctx, params = prepare(tmp_path, nats_target(auth_nats.url, user="nats",
                                                password="${env:NATS_PW}"), {})
    plan = SnapshotRoutes().plan(params, SnapshotRoutes().observe(ctx, params))
    assert plan.actions[0] == Action.read(
        f"listen to router.register/unregister on NATS {auth_nats.url} (user nats) for two "
        "registration intervals (asked by router.greet; 40s if no router answers)")
    assert plan.mutation == "read-only"
    assert SnapshotRoutes().estimate(params) == 40.0


def test_wrong_password_is_a_clear_error(tmp_path: Path, auth_nats: Nats) -> None:
    ctx, params = prepare(tmp_path, nats_target(auth_nats.url, user="nats",
                                                password="${env:BAD}"), {"duration": "1s"})
    with pytest.raises(StepFailed) as failed:
        run(ctx, params)
    assert str(failed.value) == (
        f"NATS at {auth_nats.url} refused the credentials (Authorization Violation); check "
        "the nats user/password or token (nothing was saved)")


def test_unreachable_nats_is_a_clear_error(tmp_path: Path) -> None:
    urls = [f"nats://127.0.0.1:{free_port()}", f"nats://127.0.0.1:{free_port()}"]
    ctx, params = prepare(tmp_path, {"source": {"nats": {"servers": urls}}},
                          {"duration": "1s", "timeout": "1s"})
    with pytest.raises(StepFailed, match=rf"^cannot reach NATS at {urls[0]}, {urls[1]} \(.*\); "
                                         "check the server URLs"):
        run(ctx, params)
    assert not list(ctx.artifact_dir.iterdir())


def test_a_stopping_run_stops_the_capture(tmp_path: Path, nats_server: Nats) -> None:
    ctx, params = prepare(tmp_path, nats_target(nats_server.url), {"duration": "5m"})
    timer = threading.Timer(0.5, ctx.cancelled.set)
    timer.start()
    with pytest.raises(StepCancelled):
        run(ctx, params)
    timer.join()


def test_losing_nats_during_the_capture_is_a_clear_error(tmp_path: Path) -> None:
    try:
        server = Nats().__enter__()
    except ServerUnavailable as exc:
        missing(str(exc))
    ctx, params = prepare(tmp_path, nats_target(server.url), {"duration": "30s",
                                                              "greet": False})
    stopper = threading.Timer(0.8, server.__exit__, args=(None, None, None))
    stopper.start()
    with pytest.raises(StepFailed, match=r"^the NATS connection was lost during the capture "
                                         r"\(.*\); the snapshot would be incomplete, run the "
                                         r"step again \(nothing was saved\)$"):
        run(ctx, params)
    stopper.join()
    assert not list(ctx.artifact_dir.iterdir())
