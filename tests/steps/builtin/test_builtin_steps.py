"""The built-in steps: shell, wait, approve, http.check."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbook.api import Plan, StepFailed
from runbook.clock import FakeClock
from runbook.errors import ApprovalPending, StepTimedOut
from runbook.testing import make_context, make_params
from steps.builtin.approve import Approve
from steps.builtin.http_check import HttpCheck
from steps.builtin.shell import Shell
from steps.builtin.wait import Wait


def run(step: object, ctx: object, params: object) -> object:
    plan = step.plan(params, step.observe(ctx, params))  # type: ignore[attr-defined]
    return step.apply(ctx, params, plan)  # type: ignore[attr-defined]


def test_shell_captures_output_into_the_run_log(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, step_id="greet")
    params = make_params(Shell, {"command": ["sh", "-c", "echo out; echo err >&2"],
                                 "env": {"X": "1"}})
    result = run(Shell(), ctx, params)
    assert result.outputs["stdout"] == "out\n" and result.outputs["stderr"] == "err\n"
    log = (tmp_path / "logs" / "greet.log").read_text()
    assert "$ sh -c echo out; echo err >&2" in log and "out out" in log and "err err" in log


def test_shell_failure_names_the_exit_code_and_last_error_line(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, step_id="bad")
    params = make_params(Shell, {"command": ["sh", "-c", "echo first >&2; echo last >&2; exit 4"]})
    with pytest.raises(StepFailed, match=r"^sh -c 'echo first >&2; echo last >&2; exit 4' exited "
                                         r"4: last \(log: "):
        run(Shell(), ctx, params)


def test_shell_creates_makes_the_plan_unchanged(tmp_path: Path) -> None:
    marker = tmp_path / "made"
    marker.write_text("")
    ctx = make_context(tmp_path)
    params = make_params(Shell, {"command": ["false"], "creates": str(marker)})
    step = Shell()
    plan = step.plan(params, step.observe(ctx, params))
    assert plan == Plan.unchanged(f"{marker} already exists")
    assert step.apply(ctx, params, plan).changed is False


def test_shell_timeout_kills_the_command(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    params = make_params(Shell, {"command": ["sleep", "30"], "timeout": "0.3s"})
    with pytest.raises(StepTimedOut, match="ran past its timeout"):
        run(Shell(), ctx, params)


def test_shell_revert_runs_the_undo_command_and_read_only_changes_nothing(tmp_path: Path) -> None:
    undo = tmp_path / "undone"
    params = make_params(Shell, {"command": ["true"], "revert": ["touch", str(undo)]})
    step = Shell()
    assert step.can_revert(params)
    step.revert(make_context(tmp_path), params, {})
    assert undo.exists()
    reader = make_params(Shell, {"command": ["true"], "read_only": True})
    assert not step.can_revert(reader)
    assert step.revert_plan(reader, {}).reason == "no revert command given"
    assert run(step, make_context(tmp_path), reader).changed is False


def test_wait_sleeps_on_the_context_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    ctx = make_context(tmp_path, clock=clock)
    params = make_params(Wait, {"duration": "90s", "reason": "TTL"})
    assert Wait().plan(params, None).actions[0].description == "wait 1m30s (TTL)"
    run(Wait(), ctx, params)
    assert clock.sleeps == [90.0]


def test_approve_waits_until_approved(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, step_id="gate")
    params = make_params(Approve, {"prompt": "switch?"})
    with pytest.raises(ApprovalPending, match="approve with: runbook approve test gate"):
        run(Approve(), ctx, params)
    ctx.approval = {"by": "alice", "at": "2026-11-28T22:30:00+00:00"}
    assert run(Approve(), ctx, params).outputs == {"approved_by": "alice",
                                                   "approved_at": "2026-11-28T22:30:00+00:00"}


class _Handler(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        _Handler.hits += 1
        expected = "Basic " + base64.b64encode(b"admin:letmein-please").decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        body = b"ready" if _Handler.hits >= 3 else b"starting"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.hits = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_http_check_retries_until_the_body_matches(tmp_path: Path, server: str) -> None:
    ctx = make_context(tmp_path, clock=FakeClock())
    params = make_params(HttpCheck, {"url": server, "username": "admin",
                                     "password": "${env:PW}", "contains": "ready",
                                     "until": "1m", "interval": "5s"},
                         environ={"PW": "letmein-please"})
    result = run(HttpCheck(), ctx, params)
    assert result.outputs == {"status": 200, "attempts": 3}


def test_http_check_gives_up_with_the_reason(tmp_path: Path, server: str) -> None:
    ctx = make_context(tmp_path, clock=FakeClock())
    params = make_params(HttpCheck, {"url": server})
    with pytest.raises(StepFailed, match=f"GET {server}: status 401, expected 200 "
                                         r"\(after 1 attempt\)"):
        run(HttpCheck(), ctx, params)


def test_http_check_unreachable_is_clear(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    params = make_params(HttpCheck, {"url": "http://127.0.0.1:9/", "timeout": "1s"})
    with pytest.raises(StepFailed, match=r"GET http://127.0.0.1:9/: unreachable \("):
        run(HttpCheck(), ctx, params)
