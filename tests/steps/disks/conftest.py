"""A real OpenSSH server on a free loopback port, with throwaway host and client keys.

The server runs from its own config file in a temporary directory (never the system
service) and is stopped when the test ends.
"""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook.lab.servers import free_port, wait_for_port
from tests.conftest import require_binary

SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
"""


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    key_file: Path
    key_text: str
    known_hosts: Path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    sshd_bin = require_binary("sshd", "/usr/sbin")
    keygen = require_binary("ssh-keygen")
    require_binary("ssh")
    require_binary("rsync")
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_ed25519", "id"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f",
                        str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "id.pub").read_text())
    port = free_port()
    host_key = (folder / "host_ed25519.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    config = folder / "sshd_config"
    config.write_text(SSHD_CONFIG.format(port=port, dir=folder))
    if os.geteuid() == 0:
        # sshd running as root insists on its privilege-separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = (folder / "sshd.log").open("w")
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_port(port, timeout=15)
        yield SshServer(port=port, user=getpass.getuser(), key_file=folder / "id",
                        key_text=(folder / "id").read_text(),
                        known_hosts=folder / "known_hosts")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
