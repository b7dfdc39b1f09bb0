"""Dry-run: every step in execution order with what it would do. No side effects:
secrets are not resolved, ``observe`` is not called, nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook.duration import format_duration
from runbook.loader import template
from runbook.model import Runbook, StepSpec
from runbook.params import ParamError, build
from runbook.registry import Registry, default_registry


def topological(runbook: Runbook) -> list[StepSpec]:
    """Execution order: dependencies first, file order among equals."""
    done: set[str] = set()
    order: list[StepSpec] = []
    remaining = list(runbook.steps)
    while remaining:
        for spec in remaining:
            if all(n in done for n in spec.needs):
                order.append(spec)
                done.add(spec.id)
                remaining.remove(spec)
                break
        else:  # validation rejects cycles; this only guards against misuse
            raise ValueError("dependency cycle")
    return order


def critical_path(order: list[StepSpec], seconds: dict[str, float]) -> tuple[float, list[str]]:
    """Longest chain of ``needs`` by duration: (total seconds, step ids)."""
    best: dict[str, tuple[float, list[str]]] = {}
    for spec in order:
        before = max((best[n] for n in spec.needs if n in best), key=lambda b: b[0],
                     default=(0.0, []))
        best[spec.id] = (before[0] + seconds.get(spec.id, 0.0), before[1] + [spec.id])
    return max(best.values(), key=lambda b: b[0], default=(0.0, []))


class FactReader:
    """For ``plan --observe``: calls each step's ``observe`` (read-only by the step contract)
    with secrets resolved, so plans show what the targets really hold. Whatever a step
    writes goes to a temporary directory that is removed afterwards."""

    def __init__(self, runbook: Runbook, environ: dict[str, str] | None = None) -> None:
        import tempfile

        from runbook.engine.runner import check_secrets
        from runbook.secret import Redactor, SecretResolver

        self.redactor = Redactor()
        self.resolver = SecretResolver(self.redactor, Path(runbook.dir), environ)
        check_secrets(runbook, self.resolver)
        self.targets = self.resolver.resolve(runbook.targets)
        self.dir = Path(tempfile.mkdtemp(prefix="runbook-plan-"))

    def facts(self, step: Any, params: Any, spec: StepSpec, item: Any) -> dict[str, Any]:
        from runbook.context import StepContext

        ctx = StepContext(run_id="(plan)", step_id=spec.id, run_dir=self.dir,
                          targets=self.targets, item=item, redact=self.redactor.text)
        return step.observe(ctx, params)  # type: ignore[no-any-return]

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def _plan_step(spec: StepSpec, runbook: Runbook, registry: Registry, item: Any = None,
               reader: FactReader | None = None
               ) -> tuple[list[dict[str, Any]], float | None, str | None]:
    cls = registry.load(spec.uses)
    context = {"vars": runbook.vars, "targets": runbook.targets,
               "steps": {s.id: {"outputs": _Unknown(s.id), "state": "planned"}
                         for s in runbook.steps},
               "run": {"id": "(plan)", "rehearsal": False,
                       "dir": str(Path(runbook.path).resolve().parent)}}
    if item is not None:
        context["item"] = item
    try:
        rendered = template.render(spec.with_, context)
        params = build(cls.Params, reader.resolver.resolve(rendered) if reader else rendered)
    except (template.TemplateProblem, ParamError, _NotYet) as exc:
        why = str(exc) if isinstance(exc, _NotYet) else f"parameters known only at run time ({exc})"
        return ([{"description": f"{spec.uses}: {why}", "mutates": None}],
                spec.estimate, why)
    step = cls()
    facts = None
    unread: list[dict[str, Any]] = []
    if reader is not None:
        try:
            facts = reader.facts(step, params, spec, item)
        except Exception as exc:  # an unreachable target: say so, plan without facts
            unread = [{"description": "could not read facts: "
                       + reader.redactor.text(str(exc) or type(exc).__name__), "mutates": None}]
    plan = step.plan(params, facts)
    estimate = spec.estimate if spec.estimate is not None else step.estimate(params)
    actions = unread + [a.to_dict() for a in plan.actions]
    if reader is not None:
        for a in actions:
            a["description"] = reader.redactor.text(a["description"])
    if not plan.actions:
        actions.append({"description": f"nothing to do: {plan.reason}", "mutates": False})
    return actions, estimate, None


class _NotYet(Exception):
    pass


class _Unknown(dict):  # type: ignore[type-arg]
    """``steps.ID.outputs``: at plan time the outputs do not exist yet."""

    def __init__(self, step_id: str) -> None:
        super().__init__()
        self.step_id = step_id

    def __getitem__(self, key: Any) -> Any:
        raise _NotYet(f"depends on the outputs of step '{self.step_id}'")

    def __getattr__(self, key: str) -> Any:
        raise _NotYet(f"depends on the outputs of step '{self.step_id}'")


def plan_runbook(runbook: Runbook, registry: Registry | None = None,
                 reader: FactReader | None = None) -> dict[str, Any]:
    registry = registry or default_registry()
    order = topological(runbook)
    steps = []
    seconds: dict[str, float] = {}
    for spec in order:
        items: list[Any] = [None]
        if isinstance(spec.for_each, list):
            items = spec.for_each
        entries = [_plan_step(spec, runbook, registry, item, reader) for item in items]
        actions = [a for entry in entries for a in entry[0]]
        estimate = sum(e[1] or 0 for e in entries) if any(e[1] for e in entries) else None
        if spec.for_each is not None and estimate is not None and spec.max_parallel:
            estimate = estimate / min(spec.max_parallel, len(items))
        if estimate is not None:
            seconds[spec.id] = estimate
        mutates = [a["mutates"] for a in actions]
        mutation = ("mutating" if any(m is True for m in mutates) else
                    "undetermined" if any(m is None for m in mutates) else "read-only")
        if spec.when is not None:
            mutation += " (conditional)"
        steps.append({"id": spec.id, "uses": spec.uses, "phase": spec.phase,
                      "needs": list(spec.needs), "mutation": mutation,
                      "estimate": estimate, "actions": actions,
                      "for_each": len(items) if spec.for_each is not None and
                      isinstance(spec.for_each, list) else spec.for_each,
                      "point_of_no_return": spec.point_of_no_return,
                      "rollback": spec.rollback.mode})
    total, path = critical_path(order, seconds)
    downtime_specs = [s for s in order if s.phase == "downtime"]
    downtime, _ = critical_path(downtime_specs, seconds)
    fit = None
    if runbook.windows:
        w = runbook.windows[0]
        usable = (w.end - w.start).total_seconds() - w.rollback_reserve
        fit = {"window_start": w.start.isoformat(), "window_end": w.end.isoformat(),
               "usable_seconds": usable, "downtime_estimate": downtime,
               "fits": downtime <= usable}
    return {"runbook": runbook.name, "steps": steps, "total_estimate": sum(seconds.values()),
            "critical_path": path, "critical_path_seconds": total, "window": fit}


def render_plan(planned: dict[str, Any]) -> str:
    lines = [f"plan for {planned['runbook']} ({len(planned['steps'])} steps; nothing will "
             "be changed by this command)", ""]
    for i, s in enumerate(planned["steps"], 1):
        est = format_duration(s["estimate"]) if s["estimate"] is not None else "?"
        flags = []
        if s["phase"]:
            flags.append(s["phase"])
        if s["point_of_no_return"]:
            flags.append("POINT OF NO RETURN")
        if s["rollback"] == "none":
            flags.append("no rollback")
        tail = f" [{', '.join(flags)}]" if flags else ""
        lines.append(f"{i:>3}. {s['id']} ({s['uses']}) {s['mutation']}, est. {est}{tail}")
        for a in s["actions"]:
            mark = {True: "~", False: "=", None: "?"}[a["mutates"]]
            lines.append(f"       {mark} {a['description']}")
    lines.append("")
    lines.append("~ mutating   = read-only   ? undetermined until run time")
    lines.append(f"estimated work {format_duration(planned['total_estimate'])}; critical path "
                 f"{format_duration(planned['critical_path_seconds'])} "
                 f"({' -> '.join(planned['critical_path'])})")
    fit = planned["window"]
    if fit:
        verdict = "fits" if fit["fits"] else "DOES NOT FIT"
        lines.append(f"window {fit['window_start']} .. {fit['window_end']}: downtime estimate "
                     f"{format_duration(fit['downtime_estimate'])} of "
                     f"{format_duration(fit['usable_seconds'])} usable (after the rollback "
                     f"reserve): {verdict}")
    return "\n".join(lines) + "\n"
