"""Frozen records of a validated runbook. Built only by runbook.loader.validate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runbook.loader.yamlpos import Located

PHASES = ("before", "downtime", "after")


@dataclass(frozen=True)
class Retries:
    attempts: int = 1
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None

    def pause(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed."""
        pause = self.delay * (self.backoff ** (failed_attempt - 1))
        return min(pause, self.max_delay) if self.max_delay is not None else pause


@dataclass(frozen=True)
class Window:
    start: datetime  # aware
    end: datetime  # aware
    rollback_reserve: float = 0.0
    timezone: str = "UTC"
    #: may a run that is still going at the end of this window continue in the next one?
    continue_in_next: bool = False
    index: int = 0

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True)
class RollbackSpec:
    mode: str  # "auto" | "none" | "step"
    uses: str = ""
    with_: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepSpec:
    id: str
    uses: str
    index: int  # position in the file's step list
    with_: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    phase: str | None = None
    when: str | None = None
    timeout: float | None = None
    retries: Retries = Retries()
    estimate: float | None = None
    rollback: RollbackSpec = RollbackSpec("auto")
    for_each: Any = None
    max_parallel: int | None = None
    point_of_no_return: bool = False
    idempotent: bool | None = None
    description: str = ""
    deadline: dict[str, Any] | None = None


@dataclass(frozen=True)
class Runbook:
    name: str
    path: str
    text: str
    digest: str
    description: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    windows: tuple[Window, ...] = ()
    steps: tuple[StepSpec, ...] = ()
    max_parallel: int = 4
    on_failure: str = "rollback"  # or "stop"
    on_window_overrun: str = "pause"
    located: Located | None = None

    def step(self, step_id: str) -> StepSpec:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def dir(self) -> str:
        """The runbook file's directory, absolute (templates see it as ``run.dir``)."""
        cached = self.__dict__.get("_dir")
        if cached is None:
            import os

            cached = os.path.dirname(os.path.abspath(self.path))
            object.__setattr__(self, "_dir", cached)
        return cached

    @property
    def by_id(self) -> dict[str, StepSpec]:
        cached = self.__dict__.get("_by_id")
        if cached is None:
            cached = {s.id: s for s in self.steps}
            object.__setattr__(self, "_by_id", cached)  # frozen: cache once
        return cached
