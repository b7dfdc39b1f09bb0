"""YAML into plain Python values plus a table of where every value came from.

``load`` returns ``(data, positions)``; ``positions`` maps a path such as
``("steps", 3, "with", "command", 0)`` to the 1-based ``(line, column)`` of that node,
and ``path + ("<key>",)`` to the position of a mapping key itself.
"""

from __future__ import annotations

from typing import Any

import yaml

from runbook.errors import Problem

Path = tuple[Any, ...]
Positions = dict[Path, tuple[int, int]]
KEY = "<key>"


class Located:
    def __init__(self, file: str, positions: Positions) -> None:
        self.file = file
        self.positions = positions

    def at(self, path: Path, message: str, *, key: bool = False) -> Problem:
        """A problem at ``path`` (or the nearest enclosing node that has a position)."""
        probe = path + (KEY,) if key else path
        while probe not in self.positions and probe:
            probe = probe[:-1]
        line, col = self.positions.get(probe, (1, 1))
        return Problem(self.file, line, col, message)


def load(text: str, file: str) -> tuple[Any, Located, list[Problem]]:
    positions: Positions = {}
    problems: list[Problem] = []
    try:
        # libyaml's parser keeps the same marks and is ~10x faster on 1,000-step files
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "malformed YAML"
        problems.append(Problem(file, line, col, f"malformed YAML: {what}"))
        return None, Located(file, positions), problems
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 1, 1, f"malformed YAML: {exc}"))
        return None, Located(file, positions), problems
    if node is None:
        problems.append(Problem(file, 1, 1, "the file is empty; a runbook needs 'runbook:' "
                                            "and 'steps:'"))
        return None, Located(file, positions), problems
    constructor = yaml.SafeLoader("")

    def build(n: yaml.Node, path: Path) -> Any:
        positions[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            constructor.flatten_mapping(n)
            out: dict[Any, Any] = {}
            for knode, vnode in n.value:
                key = build(knode, path + (KEY, len(out)))
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    problems.append(Problem(file, knode.start_mark.line + 1,
                                            knode.start_mark.column + 1,
                                            "mapping keys must be plain scalars"))
                    continue
                if key in out:
                    problems.append(Problem(file, knode.start_mark.line + 1,
                                            knode.start_mark.column + 1,
                                            f"duplicate key '{key}' (the first one is on line "
                                            f"{positions[path + (key, KEY)][0]})"))
                    continue
                positions[path + (key, KEY)] = (knode.start_mark.line + 1,
                                                knode.start_mark.column + 1)
                out[key] = build(vnode, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    try:
        data = build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(file, line, col, f"malformed YAML: {exc.problem}"))
        return None, Located(file, positions), problems
    # keys of mappings were recorded under (KEY, index) while building; drop those helpers
    for p in [p for p in positions if len(p) >= 2 and p[-2] == KEY]:
        del positions[p]
    return data, Located(file, positions), problems
