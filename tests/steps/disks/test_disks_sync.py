"""disks.sync against real rsync, locally and over a real sshd on loopback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runbook.api import StepFailed, StepTimedOut
from runbook.testing import make_context, make_params
from steps.disks.step import SyncDisks
from tests.conftest import require_binary

MIB = 1024 * 1024


def _run(step: SyncDisks, ctx: Any, params: Any) -> Any:
    """What the engine does: observe, plan, apply, verify."""
    plan = step.plan(params, step.observe(ctx, params))
    result = step.apply(ctx, params, plan)
    return plan, result, step.verify(ctx, params, result)


def _ssh(server: Any, **extra: Any) -> dict[str, Any]:
    return {"user": server.user, "port": server.port, "key": "${env:DISK_KEY}",
            "known_hosts": str(server.known_hosts), **extra}


def test_local_sync_keeps_links_acls_xattrs_owners_and_deletes(tmp_path: Path) -> None:
    require_binary("rsync")
    setfacl = require_binary("setfacl")
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    os.link(src / "a.txt", src / "sub" / "a-link.txt")
    subprocess.run([setfacl, "-m", "u:4242:r", str(src / "a.txt")], check=True)
    os.setxattr(src / "a.txt", "user.origin", b"vcloud")
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(src / "sub", 12345, 23456)  # an id with no name here: kept as a number
    dst.mkdir()
    (dst / "stale.txt").write_text("gone at the source")
    step, ctx = SyncDisks(), make_context(tmp_path / "run")
    params = make_params(SyncDisks, {"disks": [
        {"name": "store", "source": str(src), "destination": str(dst)}]})

    plan, result, verified = _run(step, ctx, params)

    assert plan.mutation == "mutating"
    assert (dst / "a.txt").stat().st_ino == (dst / "sub" / "a-link.txt").stat().st_ino
    acl = subprocess.run(["getfacl", "-n", str(dst / "a.txt")], capture_output=True,
                         text=True, check=True).stdout
    assert "user:4242:r--" in acl
    assert os.getxattr(dst / "a.txt", "user.origin") == b"vcloud"
    if as_root:
        assert ((dst / "sub").stat().st_uid, (dst / "sub").stat().st_gid) == (12345, 23456)
    assert not (dst / "stale.txt").exists()
    assert result.outputs["disks"]["store"]["files_transferred"] == 1  # the link is not sent
    assert result.outputs["disks"]["store"]["files_deleted"] == 1
    assert verified is True
    again = step.plan(params, step.observe(ctx, params))
    assert again.empty and again.reason == "all 1 disks already match their source"


@pytest.mark.slow
def test_final_over_ssh_moves_about_one_percent(tmp_path: Path, sshd: Any) -> None:
    src, dst = tmp_path / "store", tmp_path / "copy"
    src.mkdir()
    files = 200
    for i in range(files):
        (src / f"blob-{i:03d}.bin").write_bytes(os.urandom(MIB))
    total = files * MIB
    env = {"DISK_KEY": sshd.key_text}
    ctx = make_context(tmp_path / "run", environ=env)
    disk = {"name": "blobstore", "source": str(src), "source_host": "127.0.0.1",
            "destination": str(dst)}
    step = SyncDisks()
    initial = make_params(SyncDisks, {"disks": [disk], "ssh": _ssh(sshd)}, environ=env)
    _, first, _ = _run(step, ctx, initial)
    assert first.outputs["disks"]["blobstore"]["files_transferred"] == files
    assert first.outputs["bytes_sent"] >= total

    # Change 1% of the bytes: 100 KiB in place in one file out of ten.
    for i in range(0, files, 10):
        with (src / f"blob-{i:03d}.bin").open("r+b") as handle:
            handle.seek(300 * 1024)
            handle.write(os.urandom(100 * 1024))
    changed = (files // 10) * 100 * 1024
    final = make_params(SyncDisks, {"disks": [disk], "ssh": _ssh(sshd), "mode": "final",
                                    "source_stopped": True}, environ=env)
    plan, second, verified = _run(step, ctx, final)

    assert "20 files" in plan.actions[1].description
    moved = second.outputs["disks"]["blobstore"]["bytes_sent"]
    assert changed <= moved < 2 * changed, f"moved {moved} bytes for {changed} changed"
    assert 0.009 < moved / total < 0.02
    assert second.outputs["files_transferred"] == files // 10
    assert second.outputs["files_changed"] == files // 10
    assert second.outputs["summary"].startswith("blobstore: 2.0 MiB sent, 20 files changed, ")
    assert verified is True
    assert (dst / "blob-000.bin").read_bytes() == (src / "blob-000.bin").read_bytes()
    text = json.dumps([second.outputs, second.record])
    assert "PRIVATE KEY" not in text and sshd.key_text.strip() not in text


def test_push_to_remote_destination_with_defaults_from_the_target(tmp_path: Path,
                                                                  sshd: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("one", "two", "three"):
        (src / name).write_text(name * 100)
    env = {"DISK_KEY": sshd.key_text}
    targets = {"destination": {"ssh": _ssh(sshd)}}
    ctx = make_context(tmp_path / "run", targets=targets, environ=env)
    params = make_params(SyncDisks, {"target": "destination", "max_parallel": 2, "disks": [
        {"name": "a", "source": str(src), "destination": str(dst / "a"),
         "destination_host": "127.0.0.1"},
        {"name": "b", "source": str(src), "destination": str(dst / "b"),
         "destination_host": "127.0.0.1"}]}, environ=env)
    dst.mkdir()
    _, result, verified = _run(SyncDisks(), ctx, params)
    assert {d["files_transferred"] for d in result.outputs["disks"].values()} == {3}
    assert result.outputs["files_transferred"] == 6
    assert (dst / "b" / "three").read_text() == "three" * 100
    assert verified is True
    assert [sorted(c["disks"]) for c in ctx.checkpoints] in ([["a"], ["a", "b"]],
                                                             [["b"], ["a", "b"]])


def test_wrong_key_fails_clearly_and_copies_nothing(tmp_path: Path, sshd: Any) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "other")], check=True)
    wrong = (tmp_path / "other").read_text()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f").write_text("x")
    env = {"DISK_KEY": wrong}
    ctx = make_context(tmp_path / "run", environ=env)
    params = make_params(SyncDisks, {"ssh": _ssh(sshd), "disks": [
        {"name": "nfs", "source": str(src), "source_host": "127.0.0.1",
         "destination": str(dst)}]}, environ=env)
    step = SyncDisks()
    facts = step.observe(ctx, params)
    assert "Permission denied" in facts["disks"]["nfs"]["error"]
    with pytest.raises(StepFailed) as failed:
        step.apply(ctx, params, step.plan(params, facts))
    message = str(failed.value)
    assert message.startswith(f"disk nfs: rsync 127.0.0.1:{src} -> {dst} exited 255: ")
    assert "Permission denied (publickey)" in message
    assert "check the host, ssh key and paths" in message
    assert "PRIVATE" not in message and not dst.exists()


@pytest.mark.parametrize(("extra", "expected"), [
    ({"source_stopped": False},
     "final sync refused: the source jobs are still running (source_stopped is false); "
     "stop them first or set allow_running: true"),
    ({}, "final sync refused: nothing says the source jobs are stopped; give source_stopped "
         "or require_stopped, or allow_running: true"),
    ({"require_stopped": ["false"]},
     "final sync refused: 'false' exited 1, so the source jobs may still be running; stop "
     "them first or set allow_running: true"),
])
def test_final_refuses_while_the_source_may_run(tmp_path: Path, extra: dict[str, Any],
                                                expected: str) -> None:
    require_binary("rsync")
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f").write_text("x")
    ctx = make_context(tmp_path / "run")
    params = make_params(SyncDisks, {"mode": "final", **extra, "disks": [
        {"name": "d", "source": str(src), "destination": str(dst)}]})
    step = SyncDisks()
    with pytest.raises(StepFailed) as failed:
        step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
    assert str(failed.value) == expected
    assert not dst.exists()


@pytest.mark.parametrize("extra", [{"require_stopped": ["true"]}, {"allow_running": True}])
def test_final_runs_when_stopped_or_allowed(tmp_path: Path, extra: dict[str, Any]) -> None:
    require_binary("rsync")
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f").write_text("x")
    ctx = make_context(tmp_path / "run")
    params = make_params(SyncDisks, {"mode": "final", **extra, "disks": [
        {"name": "d", "source": str(src), "destination": str(dst)}]})
    _, result, verified = _run(SyncDisks(), ctx, params)
    assert (dst / "f").read_text() == "x"
    assert result.changed and verified is True


def test_verify_reports_differences_after_a_final_sync(tmp_path: Path) -> None:
    require_binary("rsync")
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f").write_text("x")
    ctx = make_context(tmp_path / "run")
    step = SyncDisks()
    for mode, expected in (("initial", None), ("final", False)):
        params = make_params(SyncDisks, {"mode": mode, "allow_running": True, "disks": [
            {"name": "d", "source": str(src), "destination": str(dst)}]})
        _, result, _ = _run(step, ctx, params)
        (src / "late-write").write_text(mode)  # the source changed after the copy
        assert step.verify(ctx, params, result) is expected


def test_revert_leaves_source_and_copy_alone(tmp_path: Path) -> None:
    require_binary("rsync")
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f").write_text("x")
    ctx = make_context(tmp_path / "run")
    params = make_params(SyncDisks, {"disks": [
        {"name": "d", "source": str(src), "destination": str(dst)}]})
    step = SyncDisks()
    _, result, _ = _run(step, ctx, params)
    assert step.revert_plan(params, result.record).empty
    step.revert(ctx, params, result.record)
    step.revert(ctx, params, result.record)
    assert (src / "f").read_text() == "x" and (dst / "f").read_text() == "x"


def test_a_timed_out_disk_stops_the_step_with_what_was_done(tmp_path: Path, sshd: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    env = {"DISK_KEY": sshd.key_text}
    ctx = make_context(tmp_path / "run", environ=env)
    params = make_params(SyncDisks, {
        "ssh": _ssh(sshd), "timeout": "1s", "max_parallel": 1, "disks": [
            {"name": "quick", "source": str(src), "destination": str(tmp_path / "quick")},
            {"name": "stuck", "source": str(src), "source_host": "127.0.0.1",
             "destination": str(tmp_path / "stuck"),
             "ssh": {"rsync_path": "sleep 30; rsync"}}]}, environ=env)
    step = SyncDisks()
    with pytest.raises(StepTimedOut) as stopped:
        step.apply(ctx, params, step.plan(params, None))
    assert str(stopped.value) == "command rsync ran past its timeout of 1s and was killed"
    assert stopped.value.record is not None
    assert sorted(stopped.value.record["disks"]) == ["quick"]
    assert (tmp_path / "quick" / "f").read_text() == "x"



BARRIER = """\
me=$1; other=$2; shift 2
touch "{dir}/$me"
i=0
while [ ! -e "{dir}/$other" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
[ -e "{dir}/$other" ] || exit 99
exec rsync "$@"
"""


def test_disks_are_copied_in_parallel(tmp_path: Path, sshd: Any) -> None:
    # Each remote rsync waits until the other disk's rsync has started too, so the step
    # can only succeed when both run at the same time.
    (tmp_path / "barrier.sh").write_text(BARRIER.format(dir=tmp_path))
    env = {"DISK_KEY": sshd.key_text}
    disks = []
    for me, other in (("a", "b"), ("b", "a")):
        (tmp_path / f"src-{me}").mkdir()
        (tmp_path / f"src-{me}" / "f").write_text(me)
        disks.append({"name": me, "source": str(tmp_path / f"src-{me}"),
                      "source_host": "127.0.0.1", "destination": str(tmp_path / f"dst-{me}"),
                      "ssh": {"rsync_path": f"sh {tmp_path}/barrier.sh {me} {other}"}})
    ctx = make_context(tmp_path / "run", environ=env)
    params = make_params(SyncDisks, {"ssh": _ssh(sshd), "max_parallel": 2, "disks": disks},
                         environ=env)
    step = SyncDisks()
    result = step.apply(ctx, params, step.plan(params, None))
    assert sorted(result.outputs["disks"]) == ["a", "b"]
    assert (tmp_path / "dst-b" / "f").read_text() == "b"


def test_a_plaintext_key_in_the_target_is_refused(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, targets={"old": {"ssh": {"host": "10.0.0.30",
                                                          "key": "-----BEGIN OPENSSH..."}}})
    params = make_params(SyncDisks, {"target": "old", "disks": [
        {"name": "d", "source": "/var/vcap/store", "destination": str(tmp_path / "d")}]})
    with pytest.raises(StepFailed) as failed:
        SyncDisks().observe(ctx, params)
    assert str(failed.value) == ('the ssh key must be given by reference, like key: '
                                 '"${file:keys/id_ed25519}"; for a key file path use key_file')
    assert "BEGIN" not in str(failed.value)
