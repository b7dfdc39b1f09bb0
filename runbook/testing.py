"""Helpers for testing step types without the engine: a ready StepContext."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook.clock import Clock, RealClock
from runbook.context import StepContext
from runbook.params import build
from runbook.secret import Redactor, SecretResolver


def make_context(run_dir: Path, *, targets: dict[str, Any] | None = None,
                 clock: Clock | None = None, step_id: str = "step",
                 environ: dict[str, str] | None = None) -> StepContext:
    """A StepContext whose targets have their ``${env:..}``/``${file:..}`` references resolved
    from ``environ`` (default: the process environment), as the engine would do."""
    redactor = Redactor()
    resolver = SecretResolver(redactor, run_dir, environ)
    checkpoints: list[dict[str, Any]] = []
    ctx = StepContext(run_id="test", step_id=step_id, run_dir=run_dir,
                      targets=resolver.resolve(targets or {}), clock=clock or RealClock(),
                      redact=redactor.text, on_checkpoint=checkpoints.append)
    ctx.checkpoints = checkpoints  # type: ignore[attr-defined]
    return ctx


def make_params(step_cls: Any, values: dict[str, Any],
                environ: dict[str, str] | None = None) -> Any:
    """Build a step's Params from a ``with:`` mapping, resolving secret references."""
    resolver = SecretResolver(Redactor(), Path.cwd(), environ)
    return build(step_cls.Params, resolver.resolve(values))
