"""Turning a step's spec into runnable Params: templates, secrets, types."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


class _StepsView(Mapping[str, Any]):
    """``steps`` in templates, computed per step on access (runs can have 1,000 steps)."""

    def __init__(self, runbook: Runbook, rows: dict[str, StepRow]) -> None:
        self._specs = runbook.by_id
        self._rows = rows

    def __getitem__(self, step_id: str) -> dict[str, Any]:
        spec = self._specs[step_id]
        row = self._rows.get(step_id)
        state = row.state if row else "pending"
        if spec.for_each is None:
            return {"outputs": row.outputs if row else {}, "state": state}
        items = sorted((r for r in self._rows.values()
                        if r.step_id == step_id and r.key != step_id),
                       key=lambda r: item_index(r.key))
        return {"outputs": [r.outputs for r in items], "state": state}

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


def template_context(runbook: Runbook, rows: dict[str, StepRow], run_id: str,
                     rehearsal: bool, item: Any = None) -> dict[str, Any]:
    """What templates see: vars, targets (references unresolved), steps.ID.outputs, item."""
    ctx = {"vars": runbook.vars, "targets": runbook.targets,
           "steps": _StepsView(runbook, rows),
           # run.dir: the runbook's directory, for paths next to the runbook file
           "run": {"id": run_id, "rehearsal": rehearsal,
                   "dir": runbook.dir}}
    if item is not None:
        ctx["item"] = item
    return ctx


def item_index(key: str) -> int:
    """The position of a for_each item from its key (``id[3]`` -> 3); -1 for a plain step."""
    return int(key.rsplit("[", 1)[1].rstrip("]")) if key.endswith("]") else -1


def item_of(rows: dict[str, StepRow], step_id: str, key: str) -> Any:
    """The for_each item a row ran with, from its parent's stored item list (or None)."""
    index = item_index(key)
    parent = rows.get(step_id)
    items = parent.info.get("items", []) if parent else []
    return items[index] if 0 <= index < len(items) else None


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
