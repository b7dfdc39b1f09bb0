"""RewriteHosts.plan as data: facts and parameters in, one-line actions out."""

from __future__ import annotations

from typing import Any

import pytest

from runbook.testing import make_params
from steps.ccdb.step import RewriteHosts

PARAMS = {"target": "source", "hosts": {"10.0.0.5": "10.1.0.5"}}


def column(name: str, encrypted: bool, change: int,
           examples: list[str] | None = None) -> dict[str, Any]:
    return {"column": name, "encrypted": encrypted, "change": change, "hosts": change,
            "examples": examples or []}


FACTS = {"database": "db:5432/ccdb", "era": "current", "undecryptable": "", "tables": [
    {"table": "service_bindings", "rows": 40, "relabel": 0, "columns": [
        column("credentials", True, 12, [('#1 uri: "mysql://u:***@10.0.0.5/d" -> '
                                         '"mysql://u:***@10.1.0.5/d"'), "#2 x", "#3 y"]),
        column("syslog_drain_url", False, 0)]},
    {"table": "service_brokers", "rows": 2, "relabel": 0, "columns": [
        column("auth_password", True, 0), column("broker_url", False, 2)]}]}

CASES = [
    ("not observed", PARAMS, None, "undetermined",
     [("rewrite 10.0.0.5 -> 10.1.0.5 in the Cloud Controller database of target 'source' "
      "(not observed)")], ""),
    ("changes", PARAMS, FACTS, "mutating",
     [('service_bindings.credentials (encrypted): rewrite 12 of 40 rows; e.g. #1 uri: '
      '"mysql://u:***@10.0.0.5/d" -> "mysql://u:***@10.1.0.5/d"; #2 x'),
      "service_brokers.broker_url (plain text): rewrite 2 of 2 rows",
      "keep the before-image of 14 values in db:5432/ccdb table runbook_ccdb_before_image"],
     "current schema; hosts 10.0.0.5 -> 10.1.0.5"),
    ("rekey", {**PARAMS, "rekey_to_label": "k2"}, FACTS, "mutating",
     [('service_bindings.credentials (encrypted): rewrite 12 of 40 rows, re-encrypted under '
      "label 'k2'; e.g. #1 uri: \"mysql://u:***@10.0.0.5/d\" -> "
      "\"mysql://u:***@10.1.0.5/d\"; #2 x"),
      "service_brokers.broker_url (plain text): rewrite 2 of 2 rows",
      "keep the before-image of 14 values in db:5432/ccdb table runbook_ccdb_before_image"],
     "current schema; hosts 10.0.0.5 -> 10.1.0.5"),
    ("nothing to do", PARAMS,
     {**FACTS, "tables": [{**FACTS["tables"][1], "columns": [column("broker_url", False, 0)]}]},
     "unchanged", [], "no value in db:5432/ccdb holds an old host (2 rows in 1 tables scanned)"),
    ("wrong key", PARAMS, {**FACTS, "undecryptable": "service_keys.credentials: 1 value(s) ..."},
     "read-only", ["refuse to change db:5432/ccdb: service_keys.credentials: 1 value(s) ..."],
     "the encryption keys do not match the data"),
]


@pytest.mark.parametrize("name,values,facts,mutation,lines,reason", CASES,
                         ids=[c[0] for c in CASES])
def test_plan(name: str, values: dict[str, Any], facts: dict[str, Any] | None, mutation: str,
              lines: list[str], reason: str) -> None:
    params = make_params(RewriteHosts, values)
    plan = RewriteHosts().plan(params, facts)
    assert plan.mutation == mutation
    assert [a.description for a in plan.actions] == lines
    assert plan.reason == reason


def test_revert_plan_names_the_before_image() -> None:
    params = make_params(RewriteHosts, PARAMS)
    plan = RewriteHosts().revert_plan(params, {"run_key": "r1/rewrite", "database": "db:5432/ccdb",
                                               "changed": {"a.b": 3, "c.d": 4}})
    assert [a.description for a in plan.actions] == [
        "restore 7 values of db:5432/ccdb from runbook_ccdb_before_image (run key r1/rewrite)"]


def test_step_module_imports_no_integration_library() -> None:
    import subprocess
    import sys

    code = ("import sys, steps.ccdb.step; bad = [m for m in ('psycopg', 'cryptography') "
            "if m in sys.modules]; print(','.join(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
