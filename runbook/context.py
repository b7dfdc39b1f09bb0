"""What a step receives when it runs: identity, clock, logger, targets, cancellation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.clock import Clock, RealClock
from runbook.errors import StepCancelled, StepFailed
from runbook.process import Completed, run_process


@dataclass
class StepContext:
    """Everything a step may use. No step reaches for globals.

    ``targets`` holds the runbook's connection profiles with secret references already
    resolved into :class:`~runbook.secret.Secret` objects. ``checkpoint(record)`` stores,
    durably and at once, what the step has done so far, so a crash or failure midway can
    still be undone by ``revert``.
    """

    run_id: str
    step_id: str
    run_dir: Path
    targets: dict[str, Any] = field(default_factory=dict)
    clock: Clock = field(default_factory=RealClock)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("runbook.step"))
    cancelled: threading.Event = field(default_factory=threading.Event)
    rehearsal: bool = False
    attempt: int = 1
    item: Any = None
    redact: Callable[[str], str] = lambda s: s
    on_checkpoint: Callable[[dict[str, Any]], None] = lambda record: None
    #: for approve steps: the stored approval ({"by", "at"}) if one was given
    approval: dict[str, Any] | None = None
    #: for approve steps on a terminal: asks the operator, returns True when approved
    ask: Callable[[str], bool] | None = None

    @property
    def log_dir(self) -> Path:
        path = self.run_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def artifact_dir(self) -> Path:
        path = self.run_dir / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def safe_step_id(self) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.step_id)

    def target(self, name: str) -> dict[str, Any]:
        if name not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise StepFailed(f"target '{name}' is not defined (known targets: {known})")
        value = self.targets[name]
        if not isinstance(value, dict):
            raise StepFailed(f"target '{name}' must be a mapping of connection settings")
        return value

    def checkpoint(self, record: dict[str, Any]) -> None:
        self.on_checkpoint(record)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise StepCancelled(f"step {self.step_id} stopped because the run is stopping")

    def sleep(self, seconds: float) -> None:
        if not self.clock.sleep(seconds, self.cancelled):
            self.check_cancelled()

    def run(self, argv: list[str], *, env: dict[str, str] | None = None,
            cwd: str | Path | None = None, timeout: float | None = None,
            input: str | None = None) -> Completed:
        """Run a command; its output goes to this step's log file in the run directory."""
        log_path = self.log_dir / f"{self.safe_step_id}.log"
        with log_path.open("a") as log:
            log.write(f"$ {self.redact(' '.join(argv))}\n")
            return run_process(argv, cancel=self.cancelled, env=env, cwd=cwd, timeout=timeout,
                               input=input, log=log, redact=self.redact)
