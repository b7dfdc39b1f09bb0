"""gateway.switch against real nginx and HAProxy on loopback, with stand-in routers."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook.api import StepFailed
from runbook.lab.gateway import HAProxyGateway, NginxGateway, StandInRouter
from runbook.lab.servers import ServerUnavailable
from runbook.testing import make_context, make_params
from steps.gateway.step import SwitchGateway
from tests.conftest import missing

GATEWAYS = {"nginx": NginxGateway, "haproxy": HAProxyGateway}


@pytest.fixture
def routers() -> Iterator[tuple[StandInRouter, StandInRouter]]:
    with StandInRouter("old") as old, StandInRouter("new") as new:
        yield old, new


@pytest.fixture(params=["nginx", "haproxy"])
def gateway(request: pytest.FixtureRequest,
            routers: tuple[StandInRouter, StandInRouter]) -> Iterator[Any]:
    try:
        gw = GATEWAYS[request.param]([routers[0].address])
    except ServerUnavailable as exc:
        missing(str(exc))
    with gw:
        yield gw


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _settles_on(url: str, answer: str) -> bool:
    """A reload is asynchronous: ask until the answer comes (bounded by count, not time)."""
    for _ in range(300):
        if _get(url).strip() == answer:
            return True
        time.sleep(0.02)
    return False


class ProbeLoop:
    """Requests through the gateway, back to back, on fresh connections, in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(_get(self.url).strip())
            except Exception as exc:  # every kind of failure counts
                self.failures.append(repr(exc))

    def __enter__(self) -> ProbeLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _switch(gw: Any, router: StandInRouter, tmp_path: Path, **extra: Any) -> tuple[Any, Any]:
    ctx = make_context(tmp_path / "run", targets={"edge": {"gateway": gw.target()}})
    params = make_params(SwitchGateway, {"target": "edge", "routers": [router.address],
                                         "probe_contains": f"router={router.name}", **extra})
    return ctx, params


def test_switch_without_a_failed_request_then_revert(gateway: Any, tmp_path: Path,
                                                     routers: tuple[StandInRouter, ...]) -> None:
    old, new = routers
    assert _get(gateway.url).strip() == "router=old"
    ctx, params = _switch(gateway, new, tmp_path)
    step = SwitchGateway()
    with ProbeLoop(gateway.url) as loop:
        while len(loop.answers) < 20 and not loop.failures:
            pass  # let the loop settle on the old router first
        plan = step.plan(params, step.observe(ctx, params))
        result = step.apply(ctx, params, plan)
        seen_at_switch = len(loop.answers)
        while len(loop.answers) < seen_at_switch + 30 and not loop.failures:
            pass
    assert loop.failures == []
    assert set(loop.answers[:20]) == {"router=old"}
    assert set(loop.answers[-10:]) == {"router=new"}
    assert [a.description.split(":")[0] for a in plan.actions][:3] == [
        f"check the new cf_routers section with "
        f"{'nginx -t' if gateway.binary_name == 'nginx' else 'haproxy -c'}",
        f"replace {gateway.upstream_file}", f"reload {gateway.binary_name} gracefully"]
    assert result.outputs["previous_routers"] == [old.address]
    assert result.outputs["routers"] == [new.address]
    assert result.outputs["probes"] >= 5
    assert step.verify(ctx, params, result) is True
    assert step.plan(params, step.observe(ctx, params)).empty  # idempotent

    assert step.revert_plan(params, result.record).actions[0].description.startswith(
        f"restore {gateway.upstream_file} (routers {old.address})")
    with ProbeLoop(gateway.url) as loop:
        while len(loop.answers) < 10 and not loop.failures:
            pass
        step.revert(ctx, params, result.record)
        step.revert(ctx, params, result.record)  # a repeated revert changes nothing
        settled = len(loop.answers)
        while len(loop.answers) < settled + 40 and not loop.failures:
            pass
    assert loop.failures == []
    assert set(loop.answers[-10:]) == {"router=old"}
    assert step.verify(ctx, params, result) is False


def test_invalid_config_is_never_installed(gateway: Any, tmp_path: Path,
                                           routers: tuple[StandInRouter, ...]) -> None:
    before = gateway.upstream_file.read_text()
    ctx, params = _switch(gateway, routers[1], tmp_path, server_options="no_such_option=1")
    step = SwitchGateway()
    with pytest.raises(StepFailed) as failed:
        step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
    assert str(failed.value).startswith(
        f"the new {gateway.binary_name} configuration is invalid, so it was not installed "
        "and the gateway still uses its old routers: ")
    assert gateway.upstream_file.read_text() == before
    assert sorted(p.name for p in gateway.upstream_file.parent.glob(".*runbook*")) == []
    assert _get(gateway.url).strip() == "router=old"
    assert ctx.checkpoints == []  # nothing was done, so there is nothing to undo


def test_revert_leaves_a_file_someone_else_changed(gateway: Any, tmp_path: Path,
                                                   routers: tuple[StandInRouter, ...]) -> None:
    ctx, params = _switch(gateway, routers[1], tmp_path)
    step = SwitchGateway()
    result = step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
    gateway.upstream_file.write_text(gateway.upstream_file.read_text() + "\n# hand edit\n")
    with pytest.raises(StepFailed, match=r"changed after the switch, so it is not overwritten"):
        step.revert(ctx, params, result.record)
    assert gateway.upstream_file.read_text().endswith("# hand edit\n")


def test_probes_that_never_reach_the_new_routers_fail_the_switch(
        tmp_path: Path, routers: tuple[StandInRouter, ...]) -> None:
    try:
        gw = NginxGateway([routers[0].address])
    except ServerUnavailable as exc:
        missing(str(exc))
    with gw:
        ctx, params = _switch(gw, routers[1], tmp_path, probe_contains="router=elsewhere",
                              probe_timeout="1s")
        step = SwitchGateway()
        with pytest.raises(StepFailed) as failed:
            step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
        assert str(failed.value) == (
            f"after the switch, probes of {gw.url} did not land on the new routers within 1s "
            "(answer does not contain 'router=elsewhere'); roll back to restore the old "
            "routers")
        assert failed.value.record is not None and ctx.checkpoints == [failed.value.record]
        step.revert(ctx, params, failed.value.record)
        assert _settles_on(gw.url, "router=old")


def test_nginx_main_config_must_include_the_upstream_file(
        tmp_path: Path, routers: tuple[StandInRouter, ...]) -> None:
    try:
        gw = NginxGateway([routers[0].address])
    except ServerUnavailable as exc:
        missing(str(exc))
    with gw:
        other = gw.dir / "elsewhere.conf"
        ctx, params = _switch(gw, routers[1], tmp_path, upstream_file=str(other))
        step = SwitchGateway()
        with pytest.raises(StepFailed) as failed:
            step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
        assert str(failed.value) == (
            f"{gw.config} does not include {other} directly; add 'include {other};' where the "
            "upstream belongs, so a new upstream can be checked before it is installed")
        assert not other.exists()


def test_haproxy_reload_that_the_master_refuses_is_reported(
        tmp_path: Path, routers: tuple[StandInRouter, ...]) -> None:
    try:
        gw = HAProxyGateway([routers[0].address])
    except ServerUnavailable as exc:
        missing(str(exc))
    with gw:
        from steps.gateway import config

        target = gw.target()
        live = config.FileGateway(kind="haproxy", config=target["config"],
                                  upstream_file=target["upstream_file"],
                                  binary=target["binary"], master_socket=target["master_socket"])
        # Written behind the step's back, so nothing checked it before the reload.
        gw.upstream_file.write_text("backend cf_routers\n    no_such_keyword 1\n")
        ctx = make_context(tmp_path)
        with pytest.raises(StepFailed, match="HAProxy refused the new configuration on reload "
                                             "and keeps its old worker; check its log"):
            config.reload(lambda argv: ctx.run(argv), live)
        assert _get(gw.url).strip() == "router=old"


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_switch_behind_tls_checks_certificates_unless_told(
        kind: str, tmp_path: Path, routers: tuple[StandInRouter, ...]) -> None:
    try:
        gw = GATEWAYS[kind]([routers[0].address], tls=True)
    except ServerUnavailable as exc:
        missing(str(exc))
    with gw:
        assert gw.url.startswith("https://")
        step = SwitchGateway()
        ctx, strict = _switch(gw, routers[1], tmp_path, probe_timeout="1s")
        with pytest.raises(StepFailed, match="CERTIFICATE_VERIFY_FAILED") as failed:
            step.apply(ctx, strict, step.plan(strict, step.observe(ctx, strict)))
        assert failed.value.record is not None
        step.revert(ctx, strict, failed.value.record)

        ctx, lenient = _switch(gw, routers[1], tmp_path, insecure=True)
        result = step.apply(ctx, lenient, step.plan(lenient, step.observe(ctx, lenient)))
        assert result.outputs["probes"] >= 5
        assert step.verify(ctx, lenient, result) is True
