"""Running external commands so that a timeout or a cancelled run really stops them."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runbook.errors import StepCancelled, StepTimedOut


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_process(
    argv: list[str],
    *,
    cancel: threading.Event,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
    input: str | None = None,
    log: IO[str] | None = None,
    redact: Callable[[str], str] = lambda s: s,
    monotonic: Callable[[], float] | None = None,
) -> Completed:
    """Run ``argv`` in its own process group; kill the whole group on timeout or cancel.

    Output is captured (and, when ``log`` is given, copied there line by line with
    secrets masked). Raises StepTimedOut / StepCancelled after the group is dead.
    """
    import time

    clock = monotonic or time.monotonic
    started = clock()
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
        text=True, start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []
    lock = threading.Lock()

    def pump(stream: IO[str], sink: list[str], tag: str) -> None:
        for line in stream:
            sink.append(line)
            if log is not None:
                with lock:
                    log.write(f"{tag} {redact(line.rstrip(chr(10)))}\n")
                    log.flush()

    readers = [threading.Thread(target=pump, args=(proc.stdout, out, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err, "err"), daemon=True)]
    for t in readers:
        t.start()
    if input is not None and proc.stdin is not None:
        try:
            proc.stdin.write(input)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    reason: type[Exception] | None = None
    while True:
        try:
            proc.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set():
            reason = StepCancelled
        elif timeout is not None and clock() - started > timeout:
            reason = StepTimedOut
        if reason is not None:
            _kill_group(proc)
            break
    for t in readers:
        t.join(timeout=2)
    seconds = clock() - started
    if reason is StepTimedOut:
        raise StepTimedOut(
            f"command {argv[0]} ran past its timeout of {timeout:.0f}s and was killed")
    if reason is StepCancelled:
        raise StepCancelled(f"command {argv[0]} was stopped because the run is stopping")
    return Completed(list(argv), proc.returncode, "".join(out), "".join(err), seconds)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=2)
            return
        except subprocess.TimeoutExpired:
            continue
