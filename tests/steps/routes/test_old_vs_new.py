"""Both steps together: a 2014-style old foundation (bare addresses from /routes) against a
new one captured from NATS, with a missing and a thinned route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook.api import StepFailed
from runbook.lab.routes_fake import FakeRouter, RouteEmitter, make_registrations
from runbook.lab.servers import Nats
from runbook.testing import make_context, make_params
from steps.routes.step import CompareRoutes, SnapshotRoutes

OLD = make_registrations(8, endpoints_per_route=2, network="10.0")
# The new stack: other addresses; app-3 did not come up, app-5 runs one instance of two.
NEW = [r for r in make_registrations(8, endpoints_per_route=2, network="10.1")
       if "app-3." not in r.uris[0]]
NEW.remove(next(r for r in NEW if "app-5." in r.uris[0]))


def apply(step: Any, ctx: Any, params: Any) -> dict[str, Any]:
    facts = step.observe(ctx, params)
    return step.apply(ctx, params, step.plan(params, facts)).outputs  # type: ignore[no-any-return]


def snapshots(tmp_path: Path, nats: Nats) -> tuple[str, str, Any]:
    env = {"PW": "router-status-pw"}
    with FakeRouter(OLD, password=env["PW"], fmt="legacy") as router, \
            RouteEmitter(nats.url, NEW, interval=0.2):
        targets = {"source": {"routers": {"urls": [router.url], "user": "router-status",
                                          "password": "${env:PW}"}},
                   "destination": {"nats": {"servers": [nats.url]}}}
        ctx = make_context(tmp_path, targets=targets, environ=env, step_id="snap-old")
        old = apply(SnapshotRoutes(), ctx, make_params(SnapshotRoutes, {"target": "source"}))
        ctx.step_id = "snap-new"
        new = apply(SnapshotRoutes(), ctx, make_params(
            SnapshotRoutes, {"target": "destination", "duration": "0.8s", "greet_wait": "0.1s"}))
    return old["path"], new["path"], ctx


def test_the_gate_fails_on_a_missing_and_a_thinned_route(tmp_path: Path,
                                                         nats_server: Nats) -> None:
    old, new, ctx = snapshots(tmp_path, nats_server)
    ctx.step_id = "compare"
    params = make_params(CompareRoutes, {"old": old, "new": new})
    with pytest.raises(StepFailed) as failed:
        apply(CompareRoutes(), ctx, params)
    assert "1 route missing (at most 0 allowed); 3 of 16 endpoints missing (18.75%" \
        in str(failed.value)
    assert "1 with fewer endpoints" in str(failed.value)
    relaxed = make_params(CompareRoutes, {"old": old, "new": new, "max_missing": 1,
                                          "max_missing_endpoints_ratio": 0.2})
    out = apply(CompareRoutes(), ctx, relaxed)
    assert (out["missing"], out["fewer"], out["extra"]) == (1, 1, 0)
    assert out["missing_sample"] == ["app-3.apps.example.com"]


def test_tolerances_out_of_range_are_refused(tmp_path: Path) -> None:
    params = make_params(CompareRoutes, {"old": "a", "new": "b",
                                         "max_missing_endpoints_ratio": 5})
    with pytest.raises(StepFailed, match="must lie between 0 and 1"):
        apply(CompareRoutes(), make_context(tmp_path), params)
