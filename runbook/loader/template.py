"""Jinja2 in a sandbox with strict undefined, over ``vars``, ``targets``, ``steps`` and ``item``.

Validation checks every template statically: it parses it and follows each
``vars.…`` / ``targets.…`` / ``steps.ID.outputs.KEY`` chain against what the runbook
declares, so a typo is reported at its line before anything runs. Execution renders;
a value that is exactly one ``{{ expression }}`` keeps its native type (a list stays a
list), anything else renders to a string.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                     keep_trailing_newline=True)
_SINGLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
ROOTS = ("vars", "targets", "steps", "item", "run")


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _single_expression(text: str) -> str | None:
    match = _SINGLE.match(text)
    if match and "{{" not in match.group(1) and "}}" not in match.group(1):
        return match.group(1)
    return None


class TemplateProblem(Exception):
    pass


def check(text: str, known: Callable[[list[str]], str | None]) -> list[str]:
    """Problems in template ``text``; ``known(chain)`` explains an unknown reference chain."""
    try:
        tree = _ENV.parse(text)
    except TemplateError as exc:
        return [f"bad template: {exc}"]
    local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    problems: list[str] = []
    seen: set[str] = set()
    for node in tree.find_all(nodes.Name):
        if node.ctx != "load" or node.name in local:
            continue
        chain = [node.name]
        parent = _parents(tree).get(id(node))
        while parent is not None:
            if isinstance(parent, nodes.Getattr):
                chain.append(parent.attr)
            elif isinstance(parent, nodes.Getitem) and isinstance(parent.arg, nodes.Const):
                chain.append(str(parent.arg.value))
            else:
                break
            parent = _parents(tree).get(id(parent))
        problem = known(chain)
        if problem and problem not in seen:
            seen.add(problem)
            problems.append(problem)
    return problems


_PARENT_CACHE: dict[int, dict[int, nodes.Node]] = {}


def _parents(tree: nodes.Template) -> dict[int, nodes.Node]:
    cached = _PARENT_CACHE.get(id(tree))
    if cached is None:
        cached = {}
        for parent in tree.find_all(nodes.Node):
            for child in parent.iter_child_nodes():
                # only the object side of an attribute/item access continues a chain
                if isinstance(parent, (nodes.Getattr, nodes.Getitem)) and child is not parent.node:
                    continue
                cached[id(child)] = parent
        _PARENT_CACHE.clear()
        _PARENT_CACHE[id(tree)] = cached
    return cached


def chain_checker(data: dict[str, Any], *, step_ids: set[str], allowed_steps: set[str],
                  outputs: dict[str, tuple[str, ...] | None], has_item: bool
                  ) -> Callable[[list[str]], str | None]:
    """Explain why a reference chain cannot resolve, or return None when it can."""

    def known(chain: list[str]) -> str | None:
        root = chain[0]
        if root not in ROOTS:
            close = difflib.get_close_matches(root, ROOTS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return f"undefined variable '{root}'{hint} (templates see vars, targets, steps, item)"
        if root == "item":
            return None if has_item else "'item' is only defined in a step with 'for_each'"
        if root == "run":
            return None
        if root == "steps":
            if len(chain) < 2:
                return None
            sid = chain[1]
            if sid not in step_ids:
                close = difflib.get_close_matches(sid, sorted(step_ids), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                return f"'steps.{sid}' is not a step of this runbook{hint}"
            if sid not in allowed_steps:
                return (f"'steps.{sid}' is used but '{sid}' is not among this step's needs "
                        f"(direct or indirect); add it to 'needs'")
            if len(chain) >= 3 and chain[2] not in ("outputs", "state"):
                return f"'steps.{sid}.{chain[2]}' does not exist; use steps.{sid}.outputs.KEY"
            declared = outputs.get(sid)
            if len(chain) >= 4 and chain[2] == "outputs" and declared is not None \
                    and chain[3] not in declared:
                return (f"step '{sid}' has no output '{chain[3]}' "
                        f"(it has: {', '.join(declared) or 'none'})")
            return None
        value: Any = data.get(root, {})
        walked = root
        for part in chain[1:]:
            if isinstance(value, dict):
                if part not in value:
                    close = difflib.get_close_matches(part, [str(k) for k in value], n=1)
                    hint = f"; did you mean '{walked}.{close[0]}'?" if close else ""
                    return f"undefined variable '{walked}.{part}'{hint}"
                value = value[part]
            elif isinstance(value, list) and part.isdigit():
                if int(part) >= len(value):
                    return f"'{walked}' has no item {part}"
                value = value[int(part)]
            else:
                return None  # a method or filter on a scalar: leave it to run time
            walked += f".{part}"
        return None

    return known


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template inside ``value`` (recursively); raise TemplateProblem."""
    if isinstance(value, str) and is_template(value):
        try:
            expr = _single_expression(value)
            if expr is not None:
                return _ENV.compile_expression(expr, undefined_to_none=False)(**context)
            return _ENV.from_string(value).render(**context)
        except TemplateError as exc:
            raise TemplateProblem(f"template {value!r}: {exc}") from None
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def truthy(expression: str, context: dict[str, Any]) -> bool:
    """Evaluate a ``when:`` condition: either ``{{ expr }}`` or a bare expression."""
    expr = _single_expression(expression)
    try:
        result = _ENV.compile_expression(expr if expr is not None else expression,
                                         undefined_to_none=False)(**context)
    except TemplateError as exc:
        raise TemplateProblem(f"condition {expression!r}: {exc}") from None
    return bool(result)
