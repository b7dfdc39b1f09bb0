"""The lifecycle every step type implements.

``observe`` reads facts (no changes), ``plan`` turns facts and parameters into
:class:`Action` records (pure), ``apply`` does the work and returns a :class:`Result`
whose ``record`` is what ``revert`` needs to undo it, ``verify`` checks the work (and,
after a crash, tells whether an interrupted apply had finished), ``revert`` undoes.
Dry-run calls ``observe`` and ``plan`` only: step code never asks "am I in dry-run".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from runbook.context import StepContext
from runbook.errors import NotReversible

P = TypeVar("P")


@dataclass(frozen=True)
class Action:
    """One thing a step would do, in one line, with secrets already masked."""

    description: str
    mutates: bool | None = True  # None: cannot be known before running

    @classmethod
    def read(cls, description: str) -> "Action":
        return cls(description, mutates=False)

    @classmethod
    def change(cls, description: str) -> "Action":
        return cls(description, mutates=True)

    @classmethod
    def unknown(cls, description: str) -> "Action":
        return cls(description, mutates=None)

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "mutates": self.mutates}


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    reason: str = ""  # why the plan is empty, or a note on it

    @classmethod
    def of(cls, *actions: Action, reason: str = "") -> "Plan":
        return cls(tuple(actions), reason)

    @classmethod
    def unchanged(cls, reason: str) -> "Plan":
        return cls((), reason)

    @property
    def empty(self) -> bool:
        return not self.actions

    @property
    def mutation(self) -> str:
        """``mutating``, ``read-only``, ``undetermined`` or ``unchanged``."""
        if not self.actions:
            return "unchanged"
        if any(a.mutates for a in self.actions):
            return "mutating"
        if any(a.mutates is None for a in self.actions):
            return "undetermined"
        return "read-only"

    def to_dict(self) -> dict[str, Any]:
        return {"mutation": self.mutation, "reason": self.reason,
                "actions": [a.to_dict() for a in self.actions]}


@dataclass
class Result:
    """What apply hands back. ``outputs`` are visible to later steps' templates;
    ``record`` is private to this step's revert. Both must be JSON data without secrets."""

    outputs: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    changed: bool = True


@dataclass(frozen=True)
class NoParams:
    pass


class Step(ABC, Generic[P]):
    """Base class of every step type. Subclasses set ``Params`` to a dataclass."""

    Params: ClassVar[type] = NoParams
    #: name under which the type is registered (set by the registry)
    type_name: ClassVar[str] = ""
    #: default for a step's ``idempotent:`` key: may apply run twice safely?
    idempotent: ClassVar[bool] = False
    #: output keys the step promises, checked in templates when not None
    outputs: ClassVar[tuple[str, ...] | None] = None

    def can_revert(self, params: P) -> bool:
        """Whether ``revert`` can undo this step's work (default: the class overrides it)."""
        return type(self).revert is not Step.revert

    def observe(self, ctx: StepContext, params: P) -> dict[str, Any]:
        return {}

    @abstractmethod
    def plan(self, params: P, facts: dict[str, Any] | None) -> Plan:
        """Pure. ``facts`` is None when observation was not possible (dry-run offline)."""

    @abstractmethod
    def apply(self, ctx: StepContext, params: P, plan: Plan) -> Result:
        """Do the work; return outputs (for later steps) and a record (for revert)."""

    def verify(self, ctx: StepContext, params: P, result: Result | None) -> bool | None:
        """True: done and correct. False: not done. None: cannot tell.

        Called after apply (``result`` given; False fails the step) and on resume for a
        step that was in flight at a crash (``result`` is None; True means it finished).
        """
        return None

    def revert(self, ctx: StepContext, params: P, record: dict[str, Any]) -> None:
        raise NotReversible(f"step type '{self.type_name}' cannot undo its work")

    def revert_plan(self, params: P, record: dict[str, Any]) -> Plan:
        return Plan.of(Action.change(f"undo {self.type_name}"))

    def estimate(self, params: P) -> float | None:
        """Seconds this step is expected to take, when the runbook gives no estimate."""
        return None
