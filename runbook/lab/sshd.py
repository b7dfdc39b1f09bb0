"""An OpenSSH server on a loopback port, so the lab's ``disks.sync`` copies over ssh.

The old stack's disks sit "on" this host: the runbook's disk list names it as
``source_host`` and the target's ``ssh`` entry gives the user, port, private key (by
reference) and a known_hosts file holding this server's host key, so host keys are
checked as they are in production. Runs in the foreground (``-D``) with its own config,
host key and authorized_keys under a temporary directory; never the system service.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from runbook.lab.servers import (
    ServerUnavailable,
    find_binary,
    free_port,
    stop_process,
)


class Sshd:
    """``sshd -D`` on 127.0.0.1; ``.client_key`` logs in as ``.user``."""

    def __init__(self) -> None:
        self.binary = find_binary("sshd", ["/usr/sbin"])
        if self.binary is None or shutil.which("ssh") is None or shutil.which("rsync") is None:
            raise ServerUnavailable("sshd: install Debian's openssh-server, openssh-client "
                                    "and rsync packages")
        if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
            # OpenSSH's privilege separation directory; its absence stops sshd as root.
            raise ServerUnavailable("sshd: /run/sshd is missing (privilege separation)")
        self.port = free_port()
        self.user = getpass.getuser()
        self.dir = Path(tempfile.mkdtemp(prefix="runbook-sshd-"))
        self.client_key = self.dir / "client_key"
        self.known_hosts = self.dir / "known_hosts"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        host_key = self.dir / "host_key"
        for path in (host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                           check=True, capture_output=True)
        (self.dir / "authorized_keys").write_text(
            (self.dir / "client_key.pub").read_text())
        (self.dir / "authorized_keys").chmod(0o600)
        # A port found free can be taken by another process before sshd binds it: then
        # sshd exits (or someone else answers), and another port is tried.
        for _ in range(3):
            if self._start(host_key):
                return self
            self.port = free_port()
        self.__exit__()
        raise ServerUnavailable("sshd did not start: "
                                + (self.dir / "sshd.log").read_text()[-500:])

    def _start(self, host_key: Path) -> bool:
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} "
                                    f"{(self.dir / 'host_key.pub').read_text()}")
        config = self.dir / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {host_key}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AllowUsers {self.user}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",  # the key files live in a temporary directory
            "UsePAM no",
            "", ]))
        self.proc = subprocess.Popen([str(self.binary), "-D", "-e", "-f", str(config)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=(self.dir / "sshd.log").open("wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _banner(self.port).startswith(b"SSH-2.0-OpenSSH"):
                time.sleep(0.1)  # still alive: the answer was ours, not a neighbour's
                if self.proc.poll() is None:
                    return True
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None
        return False

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _banner(port: int) -> bytes:
    """The first line a server on ``port`` sends, or b"" when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(64)
    except OSError:
        return b""
