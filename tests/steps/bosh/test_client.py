"""The bosh CLI client: JSON table parsing, task ids and verbatim errors, the child env."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runbook.api import Completed, Secret
from steps.bosh.client import BoshCli, BoshError, BoshSettings, parse_instances


def rows(*cells: dict[str, str]) -> list[dict[str, str]]:
    return list(cells)


@pytest.mark.parametrize("process_instance_cell", ["", "~", "api/4f1c"])
def test_process_rows_attach_to_their_instance(process_instance_cell: str) -> None:
    found = parse_instances(rows(
        {"instance": "api/4f1c", "process": "", "process_state": "running", "az": "z1",
         "ips": "10.0.1.5\n10.0.2.5", "state": "started", "disk_cids": "-", "index": "0"},
        {"instance": process_instance_cell, "process": "cloud_controller_ng",
         "process_state": "running"},
        {"instance": "cc_db/77aa", "process": "", "process_state": "", "az": "z2", "ips": "",
         "state": "detached", "vm_cid": "-", "disk_cids": "disk-1\ndisk-2", "index": "0"}))
    api, db = found
    assert api.name == "api/4f1c" and api.ips == ("10.0.1.5", "10.0.2.5") and api.running
    assert [(p.name, p.state) for p in api.processes] == [("cloud_controller_ng", "running")]
    assert api.disk_cids == () and not api.stopped
    assert db.stopped and db.vm_cid == "" and db.disk_cids == ("disk-1", "disk-2")


def fake_runner(reply: dict[str, Any], code: int, seen: list[Any]) -> Any:
    def run(argv: list[str], *, env: dict[str, str], timeout: float | None) -> Completed:
        seen.append((argv, env, timeout))
        return Completed(argv, code, json.dumps(reply), "", 0.0)
    return run


def settings(**kw: Any) -> BoshSettings:
    return BoshSettings(environment="https://10.0.0.6:25555", deployment="cf", client="admin",
                        client_secret=Secret("hunter2-secret"), ca_cert="-----BEGIN CERT",
                        timeout=60.0, **kw)


def test_secret_goes_only_into_the_child_environment() -> None:
    seen: list[Any] = []
    cli = BoshCli(settings(), fake_runner({"Tables": [], "Lines": ["Succeeded"]}, 0, seen))
    cli.stop("cc_db", hard=True)
    argv, env, timeout = seen[0]
    assert argv == ["bosh", "--json", "--non-interactive", "-d", "cf", "stop", "cc_db", "--hard"]
    assert env["BOSH_CLIENT_SECRET"] == "hunter2-secret" and "hunter2" not in " ".join(argv)
    assert env["BOSH_ENVIRONMENT"] == "https://10.0.0.6:25555" and env["BOSH_DEPLOYMENT"] == "cf"
    assert env["BOSH_CA_CERT"] == "-----BEGIN CERT" and timeout == 60.0


def test_failed_task_error_keeps_task_id_and_lines_verbatim() -> None:
    lines = ["Using environment 'https://10.0.0.6:25555' as client 'admin'", "Task 4711",
             "Task 4711 | 22:01:02 | Error: Timed out sending 'stop' to instance "
             "'cc_db/77aa' after 45 seconds", "Task 4711 error",
             "Expected task '4711' to succeed but state is 'error'", "Exit code 1"]
    cli = BoshCli(settings(), fake_runner({"Lines": lines}, 1, []))
    with pytest.raises(BoshError) as err:
        cli.stop("cc_db")
    assert err.value.task_id == 4711 and err.value.lines == lines
    assert str(err.value) == (
        "bosh -d cf stop cc_db --soft failed (director task 4711): "
        "Task 4711 | 22:01:02 | Error: Timed out sending 'stop' to instance 'cc_db/77aa' after "
        "45 seconds / Expected task '4711' to succeed but state is 'error'")


def test_non_json_failure_uses_the_output_tail() -> None:
    def run(argv: list[str], **kw: Any) -> Completed:
        return Completed(argv, 1, "", "dial tcp 10.0.0.6:25555: connect: no route to host\n",
                         0.0)
    with pytest.raises(BoshError, match="failed: dial tcp 10.0.0.6:25555: connect: no route"):
        BoshCli(settings(), run).deployments()


def test_step_module_loads_without_yaml_or_jinja2() -> None:
    """`runbook validate` imports step.py; rendering libraries load only when used."""
    import subprocess
    import sys

    code = ("import sys, steps.bosh.step; "
            "print(sorted(m for m in ('yaml', 'jinja2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
