"""Load a runbook file and check all of it before anything runs.

Every problem is collected (not just the first) and reported as ``FILE:LINE:COL: message``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Any

from runbook.duration import parse_duration
from runbook.errors import MissingDependency, Problem, ValidationFailed
from runbook.loader import template
from runbook.loader.yamlpos import Located, load
from runbook.model import PHASES, Retries, RollbackSpec, Runbook, StepSpec, Window
from runbook.params import ParamError, ParamErrors, TargetRef, build, hints
from runbook.registry import Registry, default_registry
from runbook.secret import check_reference_syntax
from runbook.window import KeyedError, parse_window

TOP_KEYS = ("runbook", "description", "version", "vars", "targets", "window", "windows",
            "max_parallel", "on_failure", "on_window_overrun", "steps")
STEP_KEYS = ("id", "uses", "with", "needs", "phase", "when", "timeout", "retries", "estimate",
             "rollback", "for_each", "max_parallel", "point_of_no_return", "idempotent",
             "description", "deadline")
RETRY_KEYS = ("attempts", "delay", "backoff", "max_delay")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def load_runbook(path: str | Path, *, registry: Registry | None = None,
                 targets_override: dict[str, Any] | None = None) -> Runbook:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValidationFailed(
            [Problem(str(path), 1, 1, f"cannot read the file: {exc.strerror}")]) from None
    return parse_runbook(text, str(path), registry=registry, targets_override=targets_override)


def parse_runbook(text: str, file: str, *, registry: Registry | None = None,
                  targets_override: dict[str, Any] | None = None) -> Runbook:
    data, located, problems = load(text, file)
    if problems:
        raise ValidationFailed(problems)
    checker = _Checker(data, located, registry or default_registry(), targets_override)
    runbook = checker.run(text)
    if checker.problems:
        raise ValidationFailed(checker.problems)
    assert runbook is not None
    return runbook


def _closest(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class _Checker:
    def __init__(self, data: Any, located: Located, registry: Registry,
                 targets_override: dict[str, Any] | None) -> None:
        self.data = data
        self.at = located
        self.registry = registry
        self.targets_override = targets_override
        self.problems: list[Problem] = []

    def problem(self, path: tuple[Any, ...], message: str, *, key: bool = False) -> None:
        self.problems.append(self.at.at(path, message, key=key))

    def duration(self, path: tuple[Any, ...], value: Any, what: str) -> float | None:
        try:
            return float(parse_duration(value))
        except ValueError as exc:
            self.problem(path, f"{what} {exc}")
            return None

    # -- top level -------------------------------------------------------------------
    def run(self, text: str) -> Runbook | None:
        data = self.data
        if not isinstance(data, dict):
            self.problem((), "a runbook must be a mapping with 'runbook:' and 'steps:'")
            return None
        for key in data:
            if key not in TOP_KEYS:
                self.problem((key,), f"unknown key '{key}'{_closest(str(key), TOP_KEYS)}",
                             key=True)
        name = data.get("runbook")
        if not isinstance(name, str) or not name:
            self.problem(("runbook",) if "runbook" in data else (),
                         "'runbook' must name the runbook, e.g. 'runbook: cf-move'")
        vars_ = self.mapping(("vars",), data.get("vars", {}), "'vars'")
        targets = self.mapping(("targets",), data.get("targets", {}), "'targets'")
        self.secret_syntax(("targets",), targets)
        if self.targets_override is not None:
            targets = self.targets_override
        windows = self.windows(data)
        max_parallel = self.positive_int(("max_parallel",), data.get("max_parallel", 4),
                                         "'max_parallel'") or 4
        on_failure = self.choice(("on_failure",), data.get("on_failure", "rollback"),
                                 ("rollback", "stop"), "'on_failure'")
        overrun = self.choice(("on_window_overrun",), data.get("on_window_overrun", "pause"),
                              ("rollback", "pause", "continue"), "'on_window_overrun'")
        steps = self.steps(data.get("steps"), vars_, targets, bool(windows))
        if self.problems:
            return None
        return Runbook(name=str(name), path=self.at.file, text=text,
                       digest=hashlib.sha256(text.encode()).hexdigest(),
                       description=str(data.get("description", "")), vars=vars_,
                       targets=targets, windows=windows, steps=tuple(steps),
                       max_parallel=max_parallel, on_failure=on_failure,
                       on_window_overrun=overrun, located=self.at)

    def mapping(self, path: tuple[Any, ...], value: Any, what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"{what} must be a mapping")
            return {}
        return value

    def positive_int(self, path: tuple[Any, ...], value: Any, what: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problem(path, f"{what} must be a whole number of at least 1, got {value!r}")
            return None
        return value

    def choice(self, path: tuple[Any, ...], value: Any, options: tuple[str, ...],
               what: str) -> str:
        if value not in options:
            self.problem(path, f"{what} must be one of {', '.join(options)}, got {value!r}")
            return options[0]
        return str(value)

    def secret_syntax(self, path: tuple[Any, ...], value: Any) -> None:
        if isinstance(value, str):
            problem = check_reference_syntax(value)
            if problem:
                self.problem(path, problem)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.secret_syntax(path + (k,), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.secret_syntax(path + (i,), v)

    def windows(self, data: dict[str, Any]) -> tuple[Window, ...]:
        specs: list[tuple[tuple[Any, ...], Any]] = []
        if "window" in data:
            specs.append((("window",), data["window"]))
        if "windows" in data:
            if isinstance(data["windows"], list):
                specs += [(("windows", i), w) for i, w in enumerate(data["windows"])]
            else:
                self.problem(("windows",), "'windows' must be a list of windows")
        out: list[Window] = []
        for path, spec in specs:
            if not isinstance(spec, dict):
                self.problem(path, "a window must be a mapping with 'start' and 'duration'")
                continue
            for key in spec:
                known = ("start", "duration", "end", "timezone", "rollback_reserve",
                         "continue_in_next")
                if key not in known:
                    self.problem(path + (key,), f"unknown window key '{key}'"
                                 f"{_closest(str(key), known)}", key=True)
            try:
                out.append(parse_window(spec, len(out)))
            except KeyedError as exc:
                self.problem(path + ((exc.key,) if exc.key else ()), f"window: {exc}")
        out.sort(key=lambda w: w.start)
        return tuple(out)

    # -- steps -----------------------------------------------------------------------
    def steps(self, raw: Any, vars_: dict[str, Any], targets: dict[str, Any],
              has_window: bool) -> list[StepSpec]:
        if not isinstance(raw, list) or not raw:
            self.problem(("steps",) if raw is not None else (),
                         "'steps' must be a non-empty list of steps")
            return []
        ids: dict[str, int] = {}
        for i, s in enumerate(raw):
            if isinstance(s, dict) and isinstance(s.get("id"), str):
                if s["id"] in ids:
                    self.problem(("steps", i, "id"), f"duplicate step id '{s['id']}' (first "
                                 f"defined at line {self.at.at(('steps', ids[s['id']]), '').line})")
                else:
                    ids[s["id"]] = i
        specs: list[StepSpec] = []
        needs_of: dict[str, tuple[str, ...]] = {}
        for i, s in enumerate(raw):
            spec = self.step(i, s, ids)
            if spec is not None:
                specs.append(spec)
                needs_of[spec.id] = spec.needs
        self.cycles(needs_of, ids)
        ancestors = _ancestors(needs_of)
        outputs = {spec.id: self.outputs_of(spec.uses) for spec in specs}
        for spec in specs:
            if spec.phase == "downtime" and not has_window:
                self.problem(("steps", spec.index, "phase"),
                             f"step '{spec.id}' has phase: downtime but the runbook has no "
                             "'window'; add a maintenance window")
            self.templates(spec, vars_, targets, set(ids), ancestors.get(spec.id, set()), outputs)
            self.target_refs(spec, targets)
        return specs

    def outputs_of(self, uses: str) -> tuple[str, ...] | None:
        try:
            return self.registry.load(uses).outputs
        except Exception:
            return None

    def step(self, i: int, s: Any, ids: dict[str, int]) -> StepSpec | None:
        path: tuple[Any, ...] = ("steps", i)
        if not isinstance(s, dict):
            self.problem(path, "a step must be a mapping with 'id' and 'uses'")
            return None
        for key in s:
            if key not in STEP_KEYS:
                self.problem(path + (key,), f"unknown step key '{key}'"
                             f"{_closest(str(key), STEP_KEYS)}", key=True)
        sid = s.get("id")
        if not isinstance(sid, str) or not ID_PATTERN.match(sid):
            self.problem(path + (("id",) if "id" in s else ()),
                         "each step needs an 'id' of letters, digits, '-', '_' or '.'"
                         + (f", got {sid!r}" if sid is not None else ""))
            sid = f"#{i}"
        uses = s.get("uses")
        label = f"step '{sid}'"
        params_ok = True
        if not isinstance(uses, str):
            self.problem(path, f"{label} needs 'uses: <step type>'")
            uses = ""
            params_ok = False
        elif uses not in self.registry:
            close = self.registry.closest(uses)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            self.problem(path + ("uses",), f"{label}: unknown step type '{uses}'{hint}")
            params_ok = False
        label = f"step '{sid}' ({uses})" if uses else label
        with_ = s.get("with", {})
        if with_ is None:
            with_ = {}
        if not isinstance(with_, dict):
            self.problem(path + ("with",), f"{label}: 'with' must be a mapping of parameters")
            with_, params_ok = {}, False
        self.secret_syntax(path + ("with",), with_)
        if params_ok:
            self.params(path + ("with",), label, uses, with_)
        needs = s.get("needs", [])
        if isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list):
            self.problem(path + ("needs",), f"{label}: 'needs' must be a list of step ids")
            needs = []
        for j, n in enumerate(needs):
            if n not in ids:
                self.problem(path + ("needs", j), f"{label} needs '{n}', which is not a step "
                             f"of this runbook{_closest(str(n), list(ids))}")
            elif n == sid:
                self.problem(path + ("needs", j), f"{label} needs itself")
        phase = s.get("phase")
        if phase is not None and phase not in PHASES:
            self.problem(path + ("phase",), f"{label}: 'phase' must be one of "
                         f"{', '.join(PHASES)}, got {phase!r}")
        when = s.get("when")
        if when is not None and not isinstance(when, str):
            self.problem(path + ("when",), f"{label}: 'when' must be a condition such as "
                         "\"{{ vars.move_disks }}\"")
            when = None
        timeout = self.duration(path + ("timeout",), s["timeout"], f"{label}: 'timeout'") \
            if "timeout" in s else None
        estimate = self.duration(path + ("estimate",), s["estimate"], f"{label}: 'estimate'") \
            if "estimate" in s else None
        retries = self.retries(path + ("retries",), s.get("retries"), label)
        rollback = self.rollback(path + ("rollback",), s.get("rollback", "auto"), label)
        for_each = s.get("for_each")
        if for_each is not None and not isinstance(for_each, list) \
                and not template.is_template(for_each):
            self.problem(path + ("for_each",), f"{label}: 'for_each' must be a list or a "
                         "template that gives one")
        max_parallel = None
        if "max_parallel" in s:
            max_parallel = self.positive_int(path + ("max_parallel",), s["max_parallel"],
                                             f"{label}: 'max_parallel'")
        flags = {}
        for flag in ("point_of_no_return", "idempotent"):
            if flag in s and not isinstance(s[flag], bool):
                self.problem(path + (flag,), f"{label}: '{flag}' must be true or false")
            flags[flag] = s.get(flag) if isinstance(s.get(flag), bool) else None
        deadline = s.get("deadline")
        if deadline is not None and not isinstance(deadline, dict):
            self.problem(path + ("deadline",), f"{label}: 'deadline' must be a mapping")
            deadline = None
        return StepSpec(id=sid, uses=uses, index=i, with_=with_, needs=tuple(needs),
                        phase=phase if phase in PHASES else None, when=when, timeout=timeout,
                        retries=retries, estimate=estimate, rollback=rollback,
                        for_each=for_each, max_parallel=max_parallel,
                        point_of_no_return=bool(flags["point_of_no_return"]),
                        idempotent=flags["idempotent"], description=str(s.get("description", "")),
                        deadline=deadline)

    def params(self, path: tuple[Any, ...], label: str, uses: str, with_: dict[str, Any]) -> None:
        try:
            cls = self.registry.load(uses)
        except MissingDependency as exc:
            self.problem(path[:-1] + ("uses",), f"{label}: {exc}")
            return
        except Exception as exc:  # a broken plug-in must not hide the other problems
            self.problem(path[:-1] + ("uses",), f"{label}: step type cannot be loaded: {exc}")
            return
        try:
            build(cls.Params, with_, lenient=True)
        except ParamErrors as errs:
            for e in errs.errors:
                self.param_problem(path, label, e)
        except ParamError as e:
            self.param_problem(path, label, e)

    def param_problem(self, path: tuple[Any, ...], label: str, e: ParamError) -> None:
        name = ".".join(str(p) for p in e.path)
        unknown = e.message.startswith("unknown parameter")
        where = f"'{name}' " if name and not unknown and not e.message.startswith("missing") \
            else ""
        self.problem(path + e.path, f"{label}: {where}{e.message}", key=unknown)

    def retries(self, path: tuple[Any, ...], raw: Any, label: str) -> Retries:
        if raw is None:
            return Retries()
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = {"attempts": raw}
        if not isinstance(raw, dict):
            self.problem(path, f"{label}: 'retries' must be a number of attempts or a mapping "
                         "with attempts, delay, backoff")
            return Retries()
        for key in raw:
            if key not in RETRY_KEYS:
                self.problem(path + (key,), f"{label}: unknown retries key '{key}'"
                             f"{_closest(str(key), RETRY_KEYS)}", key=True)
        attempts = self.positive_int(path + ("attempts",), raw.get("attempts", 1),
                                     f"{label}: 'retries.attempts'") or 1
        delay = self.duration(path + ("delay",), raw.get("delay", 0),
                              f"{label}: 'retries.delay'") or 0.0
        backoff = raw.get("backoff", 1.0)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 1:
            self.problem(path + ("backoff",), f"{label}: 'retries.backoff' must be a number "
                         f"of at least 1, got {backoff!r}")
            backoff = 1.0
        max_delay = self.duration(path + ("max_delay",), raw["max_delay"],
                                  f"{label}: 'retries.max_delay'") if "max_delay" in raw else None
        return Retries(attempts, delay, float(backoff), max_delay)

    def rollback(self, path: tuple[Any, ...], raw: Any, label: str) -> RollbackSpec:
        if raw in ("auto", "none"):
            return RollbackSpec(str(raw))
        if isinstance(raw, dict) and isinstance(raw.get("uses"), str):
            uses = raw["uses"]
            for key in raw:
                if key not in ("uses", "with"):
                    self.problem(path + (key,), f"{label}: unknown rollback key '{key}'",
                                 key=True)
            if uses not in self.registry:
                close = self.registry.closest(uses)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                self.problem(path + ("uses",), f"{label}: unknown step type '{uses}'{hint}")
            else:
                self.params(path + ("with",), f"{label} rollback", uses, raw.get("with") or {})
            return RollbackSpec("step", uses, raw.get("with") or {})
        self.problem(path, f"{label}: 'rollback' must be auto, none, or a step "
                     "({uses: ..., with: ...})")
        return RollbackSpec("auto")

    def cycles(self, needs_of: dict[str, tuple[str, ...]], ids: dict[str, int]) -> None:
        state: dict[str, int] = {}
        stack: list[str] = []
        reported: set[frozenset[str]] = set()

        def visit(node: str) -> None:
            state[node] = 1
            stack.append(node)
            for nxt in needs_of.get(node, ()):
                if nxt not in needs_of:
                    continue
                if state.get(nxt) == 1:
                    cycle = stack[stack.index(nxt):] + [nxt]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self.problem(("steps", ids[nxt], "needs"),
                                     "dependency cycle: " + " -> ".join(cycle))
                elif state.get(nxt) is None:
                    visit(nxt)
            stack.pop()
            state[node] = 2

        for node in needs_of:
            if state.get(node) is None:
                visit(node)

    def templates(self, spec: StepSpec, vars_: dict[str, Any], targets: dict[str, Any],
                  step_ids: set[str], allowed: set[str],
                  outputs: dict[str, tuple[str, ...] | None]) -> None:
        known = template.chain_checker({"vars": vars_, "targets": targets}, step_ids=step_ids,
                                       allowed_steps=allowed, outputs=outputs,
                                       has_item=spec.for_each is not None)
        label = f"step '{spec.id}' ({spec.uses})"
        base: tuple[Any, ...] = ("steps", spec.index)
        for path, value in _strings(spec.with_, base + ("with",)):
            for p in template.check(value, known) if template.is_template(value) else []:
                self.problem(path, f"{label}: {p}")
        for key in ("when", "for_each"):
            value = getattr(spec, key)
            if isinstance(value, str):
                text = value if template.is_template(value) else "{{ " + value + " }}"
                for p in template.check(text, known):
                    self.problem(base + (key,), f"{label}: {p}")
        for path, value in _strings(vars_, ("vars",)):
            if template.is_template(value):
                self.problem(path, "'vars' values cannot be templates; compute them in a step")

    def target_refs(self, spec: StepSpec, targets: dict[str, Any]) -> None:
        try:
            cls = self.registry.load(spec.uses)
        except Exception:
            return
        label = f"step '{spec.id}' ({spec.uses})"
        for name, tp in hints(cls.Params).items():
            if tp is TargetRef or tp == TargetRef | None:
                value = spec.with_.get(name)
                if isinstance(value, str) and not template.is_template(value) \
                        and value not in targets:
                    known = ", ".join(sorted(targets)) or "none are defined"
                    self.problem(("steps", spec.index, "with", name),
                                 f"{label}: target '{value}' is not defined under 'targets' "
                                 f"(known: {known})")


def _strings(value: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _strings(v, path + (k,))]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _strings(v, path + (i,))]
    return []


def _ancestors(needs_of: dict[str, tuple[str, ...]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def walk(node: str, seen: set[str]) -> set[str]:
        if node in out:
            return out[node]
        result: set[str] = set()
        for n in needs_of.get(node, ()):
            if n in needs_of and n not in seen:
                result |= {n} | walk(n, seen | {n})
        out[node] = result
        return result

    for node in needs_of:
        walk(node, {node})
    return out
