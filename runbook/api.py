"""The one import surface for step authors.

    from runbook.api import Step, Plan, Action, Result, StepContext, Secret, param

A step type is a class deriving from :class:`Step` with a ``Params`` dataclass; it is
registered under ``[project.entry-points."paas_runbook.steps"]``.
"""

from runbook.clock import Clock, FakeClock, RealClock
from runbook.context import StepContext
from runbook.duration import Duration, parse_duration
from runbook.errors import (
    MissingDependency,
    NotReversible,
    StepCancelled,
    StepError,
    StepFailed,
    StepTimedOut,
)
from runbook.params import TargetRef, param
from runbook.process import Completed
from runbook.secret import Secret, reveal, reveal_text
from runbook.step import Action, NoParams, Plan, Result, Step

__all__ = [
    "Action",
    "Clock",
    "Completed",
    "Duration",
    "FakeClock",
    "MissingDependency",
    "NoParams",
    "NotReversible",
    "Plan",
    "RealClock",
    "Result",
    "Secret",
    "Step",
    "StepCancelled",
    "StepContext",
    "StepError",
    "StepFailed",
    "StepTimedOut",
    "TargetRef",
    "param",
    "parse_duration",
    "reveal",
    "reveal_text",
]
