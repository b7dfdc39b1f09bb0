"""routes.compare: missing, extra and thinned routes; maps, ignores, tolerances; the step."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from runbook.api import Action, StepFailed
from runbook.testing import make_context, make_params
from steps.routes.compare import AddressMap, Tolerances, compare_tables
from steps.routes.model import Endpoint, Rows, Table, rows_from_table, write_snapshot
from steps.routes.step import CompareRoutes


def tbl(*routes: tuple[str, list[Endpoint]]) -> Table:
    return {uri: {e.address: e for e in eps} for uri, eps in routes}


def table(*routes: tuple[str, list[Endpoint]]) -> Rows:
    return rows_from_table(tbl(*routes))


OLD_TABLE = tbl(
    ("a.example.com", [Endpoint("10.0.1.1:61001", "app-a"), Endpoint("10.0.1.2:61001", "app-a")]),
    ("b.example.com", [Endpoint("10.0.1.3:61001", "app-b")]),
    ("c.example.com", [Endpoint("10.0.1.4:61001", "app-c")]),
    ("api.sys.example.com", [Endpoint("10.0.0.5:9022")]),
    ("x.apps.internal", [Endpoint("10.0.1.9:8080", "app-x")]),
)
# Every address differs; b lost its route, a lost one of two instances, d is new.
NEW_TABLE = tbl(
    ("a.example.com", [Endpoint("10.1.7.1:62000", "app-a")]),
    ("c.example.com", [Endpoint("10.1.7.4:62001", "app-c")]),
    ("api.sys.example.com", [Endpoint("10.1.0.5:9022")]),
    ("d.example.com", [Endpoint("10.1.7.8:62003", "app-d")]),
)
OLD, NEW = rows_from_table(OLD_TABLE), rows_from_table(NEW_TABLE)


def test_diff_matches_by_route_and_app_not_by_address() -> None:
    diff = compare_tables(OLD, NEW, ignore=["*.apps.internal"])
    assert [r["route"] for r in diff.missing] == ["b.example.com"]
    assert diff.missing[0]["apps"] == ["app-b"]
    assert [r["route"] for r in diff.extra] == ["d.example.com"]
    assert diff.fewer == [{"route": "a.example.com", "old": 2, "new": 1, "missing": 1,
                           "by": {"app:app-a": 1}}]
    assert (diff.routes_old, diff.routes_new, diff.ignored) == (4, 4, 1)
    assert (diff.endpoints_old, diff.missing_endpoints) == (5, 2)
    assert diff.summary() == ("4 old routes, 4 new: 1 missing, 1 extra, 1 with fewer endpoints "
                              "(2 of 5 endpoints missing, 40.00%); 1 ignored")


def test_identical_tables_with_new_addresses_pass() -> None:
    moved = {uri: {f"10.9.{i}.1:1": e._replace(address=f"10.9.{i}.1:1")
                   for i, e in enumerate(eps.values())} for uri, eps in OLD_TABLE.items()}
    diff = compare_tables(OLD, rows_from_table(moved))
    assert diff.violations(Tolerances()) == []
    assert not diff.missing and not diff.extra and not diff.fewer


def test_an_endpoint_of_another_app_does_not_stand_in() -> None:
    old = table(("a.example.com", [Endpoint("10.0.1.1:1", "app-a")]))
    new = table(("a.example.com", [Endpoint("10.1.1.1:1", "app-z")]))
    diff = compare_tables(old, new)
    assert diff.fewer[0]["by"] == {"app:app-a": 1}


def test_address_map_checks_components_on_static_addresses() -> None:
    amap = AddressMap({"10.0.0.0/24": "10.1.0.0/24"})
    assert amap.translate("10.0.0.5:9022") == "10.1.0.5:9022"
    diff = compare_tables(OLD, NEW, address_map=amap, ignore=["*.apps.internal"])
    assert [r["route"] for r in diff.fewer] == ["a.example.com"]  # api is where expected
    old_api = table(("api.sys.example.com", [Endpoint("10.0.0.5:9022")]))
    wrong = table(("api.sys.example.com", [Endpoint("10.1.0.77:9022")]))
    assert compare_tables(old_api, wrong).fewer == []  # without a map: any backend will do
    assert compare_tables(old_api, wrong, address_map=amap).fewer == [
        {"route": "api.sys.example.com", "old": 1, "new": 1, "missing": 1,
         "by": {"address:10.1.0.5:9022": 1}}]


def test_address_map_forms() -> None:
    amap = AddressMap({"10.0.0.5:9022": "10.1.0.6:9023", "10.0.0.7": "10.1.0.7"})
    assert amap.translate("10.0.0.5:9022") == "10.1.0.6:9023"
    assert amap.translate("10.0.0.7:80") == "10.1.0.7:80"
    assert amap.translate("10.0.0.8:80") is None
    with pytest.raises(ValueError, match="a block of another size"):
        AddressMap({"10.0.0.0/24": "10.1.0.0/16"})


def test_domain_map_renames_old_hosts_before_comparing() -> None:
    old = table(("app.a9s.eu", [Endpoint("10.0.1.1:1", "a")]),
                ("app.a9s.eu/path", [Endpoint("10.0.1.1:1", "a")]))
    new = table(("app.a9sapp.eu", [Endpoint("10.1.1.1:1", "a")]),
                ("app.a9sapp.eu/path", [Endpoint("10.1.1.1:1", "a")]))
    assert compare_tables(old, new).missing and not compare_tables(
        old, new, domain_map={"a9s.eu": "a9sapp.eu"}).missing


def test_a_changed_route_service_is_a_missing_route() -> None:
    old = table(("a.example.com", [Endpoint("10.0.1.1:1", "a", route_service_url="https://rs")]))
    new = table(("a.example.com", [Endpoint("10.1.1.1:1", "a")]))
    diff = compare_tables(old, new)
    assert diff.missing == [{"route": "a.example.com", "endpoints": 1,
                             "route_service_url": "https://rs", "apps": ["a"]}]


@pytest.mark.parametrize("tol, expected", [
    (Tolerances(), ["1 route missing (at most 0 allowed)",
                    "2 of 5 endpoints missing (40.00%; at most 0.00% allowed)"]),
    (Tolerances(max_missing=1, max_missing_endpoints_ratio=0.4), []),
    (Tolerances(max_missing=1, max_missing_endpoints_ratio=0.5, max_extra=0),
     ["1 extra route (at most 0 allowed)"]),
])
def test_tolerances(tol: Tolerances, expected: list[str]) -> None:
    assert compare_tables(OLD, NEW, ignore=["*.apps.internal"]).violations(tol) == expected


# --- the step --------------------------------------------------------------------------

def snapshots(tmp_path: Path) -> tuple[str, str]:
    write_snapshot(tmp_path / "old.json.gz", OLD_TABLE, {})
    write_snapshot(tmp_path / "new.json.gz", NEW_TABLE, {})
    return str(tmp_path / "old.json.gz"), str(tmp_path / "new.json.gz")


def test_step_fails_beyond_tolerance_with_a_summary_and_keeps_the_diff(tmp_path: Path) -> None:
    old, new = snapshots(tmp_path)
    ctx = make_context(tmp_path / "run", step_id="compare")
    params = make_params(CompareRoutes, {"old": old, "new": new, "ignore": ["*.apps.internal"]})
    with pytest.raises(StepFailed) as failed:
        CompareRoutes().apply(ctx, params, CompareRoutes().plan(params, None))
    diff_path = ctx.artifact_dir / "routes-diff-compare.json.gz"
    assert str(failed.value) == (
        "the new routing table differs beyond the tolerances: 1 route missing (at most 0 "
        "allowed); 2 of 5 endpoints missing (40.00%; at most 0.00% allowed). 4 old routes, "
        "4 new: 1 missing, 1 extra, 1 with fewer endpoints (2 of 5 endpoints missing, "
        f"40.00%); 1 ignored. First: b.example.com. Full diff: {diff_path}")
    doc = json.loads(gzip.decompress(diff_path.read_bytes()))
    assert [r["route"] for r in doc["fewer"]] == ["a.example.com"]


def test_step_passes_within_tolerance_and_reports_outputs(tmp_path: Path) -> None:
    old, new = snapshots(tmp_path)
    ctx = make_context(tmp_path / "run", step_id="compare")
    params = make_params(CompareRoutes, {"old": old, "new": new, "max_missing": 1,
                                         "ignore": ["*.apps.internal"],
                                         "max_missing_endpoints_ratio": 0.4,
                                         "address_map": {"10.0.0.0/16": "10.1.0.0/16"}})
    step = CompareRoutes()
    result = step.apply(ctx, params, step.plan(params, None))
    out: dict[str, Any] = result.outputs
    assert (out["passed"], out["missing"], out["extra"], out["fewer"]) == (True, 1, 1, 1)
    assert out["missing_sample"] == ["b.example.com"] and result.changed is False
    assert step.verify(ctx, params, result) is True
    json.dumps(out)  # plain JSON for the state store


def test_step_refuses_a_snapshot_that_changed(tmp_path: Path) -> None:
    old, new = snapshots(tmp_path)
    params = make_params(CompareRoutes, {"old": old, "new": new, "old_sha256": "ab" * 32})
    with pytest.raises(StepFailed, match="does not match the recorded sha256 digest"):
        CompareRoutes().apply(make_context(tmp_path / "run"), params, CompareRoutes().plan(params, None))


def test_plan_is_read_only_and_names_the_inputs(tmp_path: Path) -> None:
    params = make_params(CompareRoutes, {"old": "a.json.gz", "new": "b.json.gz",
                                         "ignore": ["*.internal"], "max_missing": 2})
    plan = CompareRoutes().plan(params, {"old_exists": True, "new_exists": False})
    assert plan.mutation == "read-only"
    assert plan.actions[0] == Action.read("read snapshots a.json.gz (old) and b.json.gz (new)")
    assert plan.actions[1].description == ("compare by route and app (ignoring *.internal); "
                                           "fail beyond at most 2 missing routes and 0.00% "
                                           "missing endpoints")
    assert plan.reason == "not there yet: b.json.gz"
