"""The scheduling frontier: steps whose ``needs`` are all done, in file order.

It is updated on every transition instead of being recomputed, so a scheduling pass in
a 1,000-step run looks at a handful of steps rather than at all of them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from runbook.model import Runbook
from runbook.store.base import StepRow

#: states in which a step counts as finished for the steps that need it
DONE = ("succeeded", "skipped")


class Frontier:
    def __init__(self, runbook: Runbook, rows: dict[str, StepRow]) -> None:
        self._runbook = runbook
        self._dependents: dict[str, list[str]] = {s.id: [] for s in runbook.steps}
        self._unmet: dict[str, int] = {}
        self._done: set[str] = set()
        self._order: list[tuple[int, str]] = []  # (file index, step id), kept sorted
        for spec in runbook.steps:
            for need in spec.needs:
                self._dependents[need].append(spec.id)
            row = rows.get(spec.id)
            if row is not None and row.state in DONE:
                self._done.add(spec.id)
        for spec in runbook.steps:
            self._unmet[spec.id] = sum(1 for n in spec.needs if n not in self._done)
            if spec.id not in self._done and self._unmet[spec.id] == 0:
                bisect.insort(self._order, (spec.index, spec.id))

    def mark_done(self, step_id: str) -> None:
        """A step finished: drop it and admit the dependents it was the last need of."""
        if step_id in self._done or step_id not in self._unmet:
            return
        self._done.add(step_id)
        spec = self._runbook.by_id[step_id]
        position = bisect.bisect_left(self._order, (spec.index, step_id))
        if position < len(self._order) and self._order[position][1] == step_id:
            del self._order[position]
        for dependent in self._dependents[step_id]:
            self._unmet[dependent] -= 1
            if self._unmet[dependent] == 0:
                bisect.insort(self._order, (self._runbook.by_id[dependent].index, dependent))

    @property
    def all_done(self) -> bool:
        return len(self._done) == len(self._runbook.steps)

    def __iter__(self) -> Iterator[str]:
        # a copy: a pass may admit or drop steps while it walks (skips, failures)
        return (step_id for _, step_id in self._order.copy())

    def __bool__(self) -> bool:
        return bool(self._order)
