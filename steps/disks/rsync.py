"""The rsync client of ``disks.sync``: argument building, ssh identity handling, parsing.

Only the standard library is used, so this module is cheap to import. The flags follow
rsync(1): ``-a`` (recursive, permissions, times, owner, group, devices, symlinks), ``-H``
(hard links), ``-A`` (ACLs), ``-X`` (extended attributes), ``--numeric-ids`` (keep uid/gid
numbers: the new VMs have the same BOSH users but not necessarily the same names),
``--delete`` (what vanished at the source vanishes at the destination), ``--stats`` and
``-i`` (itemized changes, one line per changed item, nothing for unchanged ones).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from runbook.api import Completed, Secret

#: exit codes rsync(1) documents as "partial transfer due to vanished source files"
VANISHED = 24
BASE_FLAGS = ["-aH", "--delete", "--numeric-ids", "--stats", "--no-human-readable", "-i"]

Runner = Callable[[list[str]], Completed]


@dataclass(frozen=True)
class SshSettings:
    """How to reach one remote side. ``key`` is the private key itself (a Secret)."""

    user: str = "root"
    port: int = 22
    key: Secret | None = None
    key_file: str | None = None
    known_hosts: str | None = None
    host_key_checking: str = "yes"
    rsync_path: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """A directory, local (``host`` None) or on a host reached over ssh."""

    path: str
    host: str | None = None

    def spec(self, user: str) -> str:
        # A trailing slash makes rsync copy the directory's contents, so the destination
        # directory mirrors the source directory instead of gaining a subdirectory.
        path = self.path if self.path.endswith("/") else self.path + "/"
        if self.host is None:
            return path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{user}@{host}:{path}"

    def show(self) -> str:
        return self.path if self.host is None else f"{self.host}:{self.path}"


@dataclass(frozen=True)
class SyncStats:
    """The numbers of one rsync run, from ``--stats`` and the itemized lines."""

    files_transferred: int = 0
    files_deleted: int = 0
    files_created: int = 0
    total_size: int = 0
    transferred_size: int = 0
    literal_bytes: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    changes: int = 0  # itemized lines: transfers, deletions, attribute changes

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


_STATS = {
    "files_transferred": r"Number of regular files transferred:\s*([\d,]+)",
    "files_deleted": r"Number of deleted files:\s*([\d,]+)",
    "files_created": r"Number of created files:\s*([\d,]+)",
    "total_size": r"Total file size:\s*([\d,]+)",
    "transferred_size": r"Total transferred file size:\s*([\d,]+)",
    "literal_bytes": r"Literal data:\s*([\d,]+)",
    "bytes_sent": r"Total bytes sent:\s*([\d,]+)",
    "bytes_received": r"Total bytes received:\s*([\d,]+)",
}
# An itemized line: "YXcstpoguax path" or "*deleting   path" (rsync(1), --itemize-changes).
_ITEM = re.compile(r"^(\*deleting|[<>ch.][fdLDS][.+?a-zA-Z]{9,}) ")


def parse_output(stdout: str) -> SyncStats:
    values: dict[str, int] = {}
    for key, pattern in _STATS.items():
        match = re.search(pattern, stdout)
        values[key] = int(match.group(1).replace(",", "")) if match else 0
    values["changes"] = len(changed_items(stdout))
    return SyncStats(**values)


def changed_items(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if _ITEM.match(line)]


def ssh_command(settings: SshSettings, identity: str | None) -> str:
    """The ``-e`` value: ssh that never prompts and checks the host key."""
    argv = ["ssh", "-p", str(settings.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
            "-o", f"StrictHostKeyChecking={settings.host_key_checking}"]
    if identity:
        argv += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    if settings.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={settings.known_hosts}"]
    return shlex.join(argv)


@contextlib.contextmanager
def identity_file(settings: SshSettings) -> Iterator[str | None]:
    """A private key file for ssh: the given path, or the Secret written to a private
    temporary file that is removed afterwards (ssh reads keys only from files)."""
    if settings.key is None:
        yield settings.key_file
        return
    folder = tempfile.mkdtemp(prefix="runbook-ssh-")
    try:
        path = os.path.join(folder, "id")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            text = settings.key.reveal()
            handle.write(text if text.endswith("\n") else text + "\n")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rsync_argv(source: Endpoint, destination: Endpoint, ssh: SshSettings,
               identity: str | None, *, dry_run: bool, excludes: list[str],
               acls: bool = True, xattrs: bool = True) -> list[str]:
    if source.host is not None and destination.host is not None:
        raise ValueError("rsync cannot copy between two remote hosts; "
                         "run the step on one of them or give one side as a local path")
    argv = ["rsync", *BASE_FLAGS]
    # -A and -X need support on both sides; an old stemcell's rsync may lack it.
    argv[1] += ("A" if acls else "") + ("X" if xattrs else "")
    if dry_run:
        argv.append("--dry-run")
    for pattern in excludes:
        argv.append(f"--exclude={pattern}")
    if source.host is not None or destination.host is not None:
        argv += ["-e", ssh_command(ssh, identity)]
        if ssh.rsync_path:
            argv.append(f"--rsync-path={ssh.rsync_path}")
    argv += [source.spec(ssh.user), destination.spec(ssh.user)]
    return argv


def run_sync(run: Runner, source: Endpoint, destination: Endpoint, ssh: SshSettings, *,
             dry_run: bool, excludes: list[str], tolerate_vanished: bool,
             acls: bool = True, xattrs: bool = True) -> SyncStats:
    """Run rsync once and return its numbers; raise RsyncError with its last message."""
    with identity_file(ssh) as identity:
        argv = rsync_argv(source, destination, ssh, identity, dry_run=dry_run,
                          excludes=excludes, acls=acls, xattrs=xattrs)
        done = run(argv)
    ok = {0, VANISHED} if tolerate_vanished else {0}
    if done.returncode not in ok:
        raise RsyncError(done.returncode, _last_line(done.stderr))
    return parse_output(done.stdout)


class RsyncError(Exception):
    def __init__(self, returncode: int, message: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.message = message


def _last_line(text: str) -> str:
    # rsync ends with "rsync error: ... (code N) at main.c(...)"; the cause is just before.
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("rsync error:")
              and not ln.startswith("rsync: connection unexpectedly closed")]
    return (useful or lines or ["no message"])[-1]
