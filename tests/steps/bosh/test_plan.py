"""Plans as data: parameters + observed facts -> expected actions (no director involved)."""

from __future__ import annotations

from typing import Any

import pytest

from runbook.testing import make_params
from steps.bosh.order import health_manager_groups, start_sequence, stop_sequence
from steps.bosh.step import StartInstances, StopInstances


def inst(ident: str, state: str = "started", ps: str | None = None,
         processes: tuple[str, ...] = ()) -> dict[str, Any]:
    running = "running" if state == "started" else ("stopped" if state == "stopped" else "")
    return {"id": ident, "state": state, "process_state": running if ps is None else ps,
            "processes": list(processes)}


FACTS = {"deployment": "cf", "health_manager": ["hm9000_z1"], "groups": {
    "hm9000_z1": [inst("h1", processes=("hm9000_listener",))],
    "cc_db": [inst("c1")],
    "uaa_db": [inst("u1", "stopped")],
    "nfs_server": [inst("n1", "detached")],
    "mysql": [inst("m1"), inst("m2", "stopped")],
}}

CASES = [
    ("stop soft skips stopped groups and splits a half-stopped one", StopInstances,
     {"instance_groups": ["cc_db", "uaa_db", "nfs_server", "mysql"], "health_manager": "hm9000"},
     ["bosh update-resurrection off",
      "bosh -d cf stop hm9000_z1 --soft (1 instance)",
      "bosh -d cf stop cc_db --soft (1 instance)",
      "bosh -d cf stop mysql/m1 --soft (1 instance)",
      "bosh update-resurrection on"]),
    ("stop hard also hard-stops soft-stopped instances", StopInstances,
     {"instance_groups": ["uaa_db", "nfs_server"], "mode": "hard", "resurrection": "off"},
     ["bosh update-resurrection off", "bosh -d cf stop uaa_db --hard (1 instance)"]),
    ("start puts the health manager last", StartInstances,
     {"instance_groups": ["hm9000_z1", "uaa_db", "nfs_server", "cc_db"],
      "health_manager": "hm9000", "resurrection": "on"},
     ["bosh -d cf start uaa_db (1 instance)", "bosh -d cf start nfs_server (1 instance)"]
     + ["bosh update-resurrection on"]),
    ("a running group needs nothing", StartInstances,
     {"instance_groups": ["cc_db"], "resurrection": "untouched"},
     []),
]


@pytest.mark.parametrize("title,cls,values,expected", CASES, ids=[c[0] for c in CASES])
def test_plan_cases(title: str, cls: type, values: dict[str, Any],
                    expected: list[str]) -> None:
    params = make_params(cls, {"target": "t", **values})
    plan = cls().plan(params, FACTS)
    assert [a.description for a in plan.actions] == expected
    assert all(a.mutates for a in plan.actions)


def test_failing_process_is_started_again() -> None:
    facts = {**FACTS, "groups": {"cc_db": [inst("c1", "started", ps="failing")]}}
    params = make_params(StartInstances, {"target": "t", "instance_groups": ["cc_db"],
                                          "resurrection": "untouched"})
    assert [a.description for a in StartInstances().plan(params, facts).actions] == [
        "bosh -d cf start cc_db (1 instance)"]


def test_unchanged_plan_says_why() -> None:
    params = make_params(StopInstances, {"target": "t", "instance_groups": ["uaa_db"]})
    plan = StopInstances().plan(params, FACTS)
    assert plan.empty and plan.mutation == "unchanged"
    assert plan.reason == "all instances of uaa_db in 'cf' are already stopped"


def test_health_manager_per_era() -> None:
    groups = {"hm9000_z1": [inst("a")], "hm9000_z2": [inst("b")],
              "health": [inst("c", processes=("hm9000_sender",))], "api": [inst("d")],
              "scheduler": [inst("e")], "diego-api": [inst("f")]}
    assert health_manager_groups("hm9000", None, groups) == ["hm9000_z1", "hm9000_z2", "health"]
    assert health_manager_groups("diego", None, groups) == ["scheduler", "diego-api"]
    assert health_manager_groups("diego", None, {"scheduler": []}) == ["scheduler"]
    assert health_manager_groups("none", None, groups) == []
    assert health_manager_groups("diego", ["hm"], groups) == ["hm"]
    assert stop_sequence(["cc_db", "scheduler"], ["scheduler"]) == ["scheduler", "cc_db"]
    assert start_sequence(["scheduler", "cc_db"], ["scheduler"]) == ["cc_db", "scheduler"]
