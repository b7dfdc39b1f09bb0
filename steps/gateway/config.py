"""File-based gateways (nginx, HAProxy): render, validate, install atomically, reload.

The step owns one file: the upstream block (nginx, ``include``\\ d by the main config) or
the backend section (HAProxy, loaded as a second ``-f`` file). A candidate is always
validated by the server's own checker *before* it replaces the live file:

* nginx -- ``nginx -t -c`` on a copy of the main config, placed beside it so relative
  paths resolve the same, whose ``include`` of the upstream file names the candidate;
* HAProxy -- ``haproxy -c -f <main> -f <candidate>``.

Installing is ``os.replace`` of a fsynced file in the same directory (atomic on POSIX),
and reloading is graceful: ``nginx -s reload`` starts new workers and lets the old ones
finish; HAProxy's master (``-W``) re-executes on ``reload`` from its master CLI or on
SIGUSR2 and hands the listening sockets to the new worker.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runbook.api import Completed, StepFailed

Runner = Callable[[list[str]], Completed]
TEMPLATES = Path(__file__).parent / "templates"
_INCLUDE = re.compile(r"(^|[\s;{}])include\s+(\"[^\"]+\"|'[^']+'|[^\s;]+)\s*;")


@dataclass(frozen=True)
class FileGateway:
    kind: str  # nginx | haproxy
    config: str
    upstream_file: str
    binary: str
    prefix: str | None = None
    master_socket: str | None = None
    pid_file: str | None = None
    reload_command: tuple[str, ...] | None = None


def sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return None


def default_template(kind: str) -> str:
    name = "nginx_upstream.conf.j2" if kind == "nginx" else "haproxy_backend.cfg.j2"
    return (TEMPLATES / name).read_text()


def render(template: str, *, kind: str, upstream_name: str, routers: list[str],
           server_options: str) -> str:
    """Render the upstream section in a sandbox where an unknown variable is an error."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True,
                               trim_blocks=True, lstrip_blocks=True)
    try:
        return env.from_string(template).render(
            kind=kind, upstream_name=upstream_name, routers=routers,
            server_options=server_options)
    except TemplateError as exc:
        raise StepFailed(f"the gateway template cannot be rendered: {exc}") from None


def candidate_path(gw: FileGateway) -> Path:
    target = Path(gw.upstream_file)
    return target.with_name(f".{target.name}.runbook-new")


def validate(run: Runner, gw: FileGateway, candidate: Path) -> None:
    """Raise StepFailed with the checker's own complaint when the candidate is invalid."""
    if gw.kind == "haproxy":
        done = run([gw.binary, "-c", "-q", "-f", gw.config, "-f", str(candidate)])
        _check(done, gw, candidate)
        return
    main = Path(gw.config)
    text = main.read_text()
    match = _find_include(text, main.parent, Path(gw.upstream_file))
    if match is None:
        raise StepFailed(f"{gw.config} does not include {gw.upstream_file} directly; add "
                         f"'include {gw.upstream_file};' where the upstream belongs, so a "
                         "new upstream can be checked before it is installed")
    start, end = match
    check = main.with_name(f".{main.name}.runbook-check")
    check.write_text(text[:start] + f"include {candidate};" + text[end:])
    try:
        argv = [gw.binary, "-t", "-q", "-c", str(check)]
        if gw.prefix:
            argv += ["-p", gw.prefix]
        _check(run(argv), gw, candidate, check)
    finally:
        check.unlink(missing_ok=True)


def write_candidate(gw: FileGateway, text: str) -> Path:
    path = candidate_path(gw)
    with path.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    live = Path(gw.upstream_file)
    if live.exists():
        os.chmod(path, live.stat().st_mode & 0o7777)
    return path


def install(gw: FileGateway, candidate: Path) -> None:
    os.replace(candidate, gw.upstream_file)
    # Make the rename itself durable, so a crash cannot bring the old file back.
    fd = os.open(Path(gw.upstream_file).parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reload(run: Runner, gw: FileGateway) -> None:
    if gw.reload_command:
        done = run(list(gw.reload_command))
        if done.returncode != 0:
            raise StepFailed(f"reload command '{' '.join(gw.reload_command)}' exited "
                             f"{done.returncode}: {_tail(done.stderr)}")
        return
    if gw.kind == "nginx":
        argv = [gw.binary, "-s", "reload", "-c", gw.config]
        if gw.prefix:
            argv += ["-p", gw.prefix]
        done = run(argv)
        if done.returncode != 0:
            raise StepFailed(f"nginx reload failed (exit {done.returncode}): "
                             f"{_tail(done.stderr)}; is nginx running with {gw.config}?")
        return
    if gw.master_socket:
        _reload_master(gw.master_socket)
        return
    if gw.pid_file:
        try:
            pid = int(Path(gw.pid_file).read_text().split()[0])
            os.kill(pid, signal.SIGUSR2)
        except (OSError, ValueError, IndexError) as exc:
            raise StepFailed(f"cannot signal the HAProxy master from {gw.pid_file} "
                             f"({exc}); check the pid file") from None
        return
    raise StepFailed("no way to reload HAProxy: give master_socket, pid_file or "
                     "reload_command in the target's gateway entry")


def _reload_master(path: str, wait: float = 15.0) -> None:
    """``reload`` on the master CLI, then wait for the master to count it.

    ``show proc`` prints ``<pid> master <reloads> [failed: <n>] ...``; the master is away
    for a moment while it re-executes, and ``failed`` is non-zero when the new
    configuration was refused (the old worker then keeps serving).
    """
    try:
        before, _ = _master_counters(path)
        _master_command(path, "reload")
    except OSError as exc:
        raise StepFailed(f"cannot reach the HAProxy master socket {path} "
                         f"({exc.strerror or exc}); is HAProxy running with -W -S?") from None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            reloads, failed = _master_counters(path)
        except OSError:
            time.sleep(0.05)  # re-executing
            continue
        if reloads > before:
            if failed:
                raise StepFailed("HAProxy refused the new configuration on reload and keeps "
                                 "its old worker; check its log")
            return
        time.sleep(0.05)
    raise StepFailed(f"HAProxy did not confirm the reload within {wait:.0f}s; check "
                     "'show proc' on its master socket")


def _master_counters(path: str) -> tuple[int, int]:
    text = _master_command(path, "show proc")
    match = re.search(r"^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", text, re.MULTILINE)
    if match is None:
        raise OSError(f"unexpected 'show proc' answer: {text[:80]!r}")
    return int(match.group(1)), int(match.group(2))


def _master_command(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)  # the master answers, then closes
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _find_include(text: str, base: Path, wanted: Path) -> tuple[int, int] | None:
    for match in _INCLUDE.finditer(text):
        name = match.group(2).strip("\"'")
        path = Path(name) if os.path.isabs(name) else base / name
        if os.path.realpath(path) == os.path.realpath(wanted):
            return match.start(0) + len(match.group(1)), match.end(0)
    return None


def _check(done: Completed, gw: FileGateway, candidate: Path,
           check: Path | None = None) -> None:
    if done.returncode == 0:
        return
    message = _tail(done.stderr or done.stdout)
    message = message.replace(str(candidate), "the new upstream file")
    if check is not None:
        message = message.replace(str(check), gw.config)
    raise StepFailed(f"the new {gw.kind} configuration is invalid, so it was not installed "
                     f"and the gateway still uses its old routers: {message}")


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    problems = [ln for ln in lines if "emerg" in ln or "ALERT" in ln] or lines
    return " / ".join(problems[-3:]) if problems else "no message"
