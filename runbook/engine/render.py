"""Turning a step's spec into runnable Params: templates, secrets, types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbook.errors import StepFailed
from runbook.loader import template
from runbook.model import Runbook, StepSpec
from runbook.params import ParamError, ParamErrors, build
from runbook.registry import Registry
from runbook.secret import SecretResolver
from runbook.step import Step
from runbook.store.base import StepRow


def template_context(runbook: Runbook, rows: dict[str, StepRow], run_id: str,
                     rehearsal: bool, item: Any = None) -> dict[str, Any]:
    """What templates see: vars, targets (references unresolved), steps.ID.outputs, item."""
    steps: dict[str, Any] = {}
    for spec in runbook.steps:
        row = rows.get(spec.id)
        if spec.for_each is not None:
            items = sorted((r for r in rows.values() if r.step_id == spec.id and r.key != spec.id),
                           key=lambda r: _item_index(r.key))
            steps[spec.id] = {"outputs": [r.outputs for r in items],
                              "state": row.state if row else "pending"}
        else:
            steps[spec.id] = {"outputs": row.outputs if row else {},
                              "state": row.state if row else "pending"}
    ctx = {"vars": runbook.vars, "targets": runbook.targets, "steps": steps,
           "run": {"id": run_id, "rehearsal": rehearsal}}
    if item is not None:
        ctx["item"] = item
    return ctx


def _item_index(key: str) -> int:
    return int(key.rsplit("[", 1)[1].rstrip("]"))


def item_key(step_id: str, index: int) -> str:
    return f"{step_id}[{index}]"


@dataclass
class Prepared:
    step: Step[Any]
    params: Any


def prepare(registry: Registry, uses: str, raw_with: dict[str, Any], spec: StepSpec,
            context: dict[str, Any], resolver: SecretResolver) -> Prepared:
    """Render, resolve secrets and type-check; failures are StepFailed with the reason."""
    cls = registry.load(uses)
    try:
        rendered = template.render(raw_with, context)
    except template.TemplateProblem as exc:
        raise StepFailed(f"step '{spec.id}': {exc}") from None
    resolved = resolver.resolve(rendered)
    try:
        params = build(cls.Params, resolved)
    except ParamErrors as errs:
        raise StepFailed(f"step '{spec.id}': " + "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" for e in errs.errors)) from None
    except ParamError as e:
        raise StepFailed(f"step '{spec.id}': {'.'.join(map(str, e.path))}: {e.message}") from None
    return Prepared(cls(), params)
