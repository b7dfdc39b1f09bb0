"""disks.sync: plans as data (params + facts -> actions) and rsync output parsing."""

from __future__ import annotations

from typing import Any

import pytest

from runbook.api import Action, Plan
from runbook.testing import make_params
from steps.disks.rsync import Endpoint, SshSettings, parse_output, rsync_argv
from steps.disks.step import SyncDisks

STATS = """\
>f+++++++++ a/new.bin
>f.st...... b/changed.bin
.f...p..... c/mode-only
*deleting   d/gone.bin

Number of files: 1,204 (reg: 1,200, dir: 4)
Number of created files: 1 (reg: 1)
Number of deleted files: 1 (reg: 1)
Number of regular files transferred: 2
Total file size: 209,715,200 bytes
Total transferred file size: 2,097,152 bytes
Literal data: 1,048,576 bytes
Matched data: 1,048,000 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 1,100,123
Total bytes received: 5,432

sent 1,100,123 bytes  received 5,432 bytes  2,211,110.00 bytes/sec
total size is 209,715,200  speedup is 189.70
"""


def test_parse_output_reads_stats_and_counts_itemized_changes() -> None:
    stats = parse_output(STATS)
    assert stats.files_transferred == 2
    assert stats.files_deleted == 1
    assert stats.total_size == 209_715_200
    assert stats.transferred_size == 2_097_152
    assert stats.literal_bytes == 1_048_576
    assert stats.bytes_sent == 1_100_123
    assert stats.bytes_received == 5_432
    assert stats.changes == 4  # two transfers, one permission change, one deletion


def test_argv_preserves_everything_and_quotes_the_ssh_command() -> None:
    argv = rsync_argv(Endpoint("/var/vcap/store", "10.0.0.5"), Endpoint("/mnt/store"),
                      SshSettings(user="vcap", port=2222, known_hosts="/k h"), "/id",
                      dry_run=True, excludes=["lost+found"])
    assert argv[:7] == ["rsync", "-aHAX", "--delete", "--numeric-ids", "--stats",
                        "--no-human-readable", "-i"]
    assert "--dry-run" in argv and "--exclude=lost+found" in argv
    ssh = argv[argv.index("-e") + 1]
    assert ssh.startswith("ssh -p 2222 -o BatchMode=yes")
    assert "'UserKnownHostsFile=/k h'" in ssh and "-i /id" in ssh
    assert argv[-2:] == ["vcap@10.0.0.5:/var/vcap/store/", "/mnt/store/"]


def test_argv_refuses_two_remote_sides() -> None:
    with pytest.raises(ValueError, match="cannot copy between two remote hosts"):
        rsync_argv(Endpoint("/a", "h1"), Endpoint("/b", "h2"), SshSettings(), None,
                   dry_run=False, excludes=[])


def _params(**extra: Any) -> Any:
    return make_params(SyncDisks, {"disks": [
        {"name": "nfs", "source": "/var/vcap/store", "source_host": "10.0.0.30",
         "destination": "/mnt/nfs"},
        {"name": "ccdb", "source": "/var/vcap/store/postgres", "destination": "/mnt/ccdb"},
    ], **extra})


def _fact(changes: int, files: int = 0, size: int = 0, deleted: int = 0) -> dict[str, Any]:
    return {"source": "src", "destination": "dst", "changes": changes,
            "files_transferred": files, "transferred_size": size, "files_deleted": deleted}


PLAN_CASES = [
    pytest.param({}, None, Plan.of(
        Action.unknown("rsync nfs (initial): 10.0.0.30:/var/vcap/store -> /mnt/nfs"),
        Action.unknown("rsync ccdb (initial): /var/vcap/store/postgres -> /mnt/ccdb")),
        id="offline-undetermined"),
    pytest.param({}, {"disks": {"nfs": _fact(0), "ccdb": _fact(0)}},
                 Plan.unchanged("all 2 disks already match their source"), id="in-sync"),
    pytest.param({}, {"disks": {"nfs": _fact(3, 2, 3 * 1024 * 1024, 1), "ccdb": _fact(0)}},
                 Plan.of(Action.change("rsync nfs (initial): src -> dst: 2 files (3.0 MiB) to "
                                       "copy, 1 to delete, 3 changes"),
                         reason="already in sync: ccdb"), id="one-disk-differs"),
    pytest.param({"mode": "final", "source_stopped": True},
                 {"disks": {"nfs": _fact(1, 1, 10), "ccdb": {"error": "connection refused"}}},
                 Plan.of(Action.read("check the source jobs are stopped: source_stopped"),
                         Action.change("rsync nfs (final): src -> dst: 1 files (10 B) to copy, "
                                       "0 to delete, 1 changes"),
                         Action.unknown("rsync ccdb: cannot tell what would be copied "
                                        "(connection refused)")), id="final-with-error"),
    pytest.param({"mode": "final", "require_stopped": ["bosh-is-stopped", "nfs"]},
                 {"disks": {"nfs": _fact(0), "ccdb": _fact(0)}},
                 Plan.unchanged("all 2 disks already match their source"),
                 id="final-in-sync"),
]


@pytest.mark.parametrize(("extra", "facts", "expected"), PLAN_CASES)
def test_plan(extra: dict[str, Any], facts: dict[str, Any] | None, expected: Plan) -> None:
    assert SyncDisks().plan(_params(**extra), facts) == expected


def test_acls_and_xattrs_can_be_left_out_for_an_old_rsync() -> None:
    argv = rsync_argv(Endpoint("/a"), Endpoint("/b"), SshSettings(), None, dry_run=False,
                      excludes=[], acls=False, xattrs=False)
    assert argv[:3] == ["rsync", "-aH", "--delete"]
