"""The one exception tree of paas-runbook.

Every error carries a stable ``code`` so scripts can match on it; data lives in
attributes and the sentence in the message. Only the CLI formats errors for people.

::

    RunbookError                      E000  base of everything raised on purpose
    ├── InputError                    E100  the operator's input is wrong; nothing ran (exit 2)
    │   ├── ValidationFailed          E101  a runbook has problems (carries .problems)
    │   ├── SecretUnavailable         E102  a ${env:..} / ${file:..} reference cannot be resolved
    │   ├── UnknownRun                E103  no run with that id in the store
    │   ├── RunbookChanged            E104  the file differs from the one the run started with
    │   └── MissingDependency         E105  an optional library for a step type is not installed
    ├── StoreError                    E200  the state store cannot be used
    │   ├── CorruptState              E201  the store holds something the engine cannot read
    │   └── LockHeld                  E202  another process drives this run or these targets
    ├── StepError                     E300  raised by step code; the step fails
    │   ├── StepFailed                E301  apply/verify found the work did not succeed
    │   ├── StepTimedOut              E302  the step ran past its timeout and was stopped
    │   ├── StepCancelled             E303  the run was stopped while the step ran
    │   └── NotReversible             E304  revert asked of a step type that cannot undo
    ├── RevertFailed                  E400  a revert failed: a human must check (terminal)
    └── Stopped                       E500  the run stopped and can be resumed (exit 3)
        ├── WindowClosed              E501  a downtime step may not start outside the window
        ├── GoNoGoRefused             E502  the forecast does not fit the window
        ├── ApprovalPending           E503  an approve step waits for `runbook approve`
        ├── InterruptedStep           E504  a step was in flight at a crash; the operator decides
        └── Interrupted               E505  Ctrl-C or SIGTERM: checkpointed, resumable
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RunbookError(Exception):
    code = "E000"
    exit_code = 1


class InputError(RunbookError):
    code = "E100"
    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One validation finding, located in a file."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ValidationFailed(InputError):
    code = "E101"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SecretUnavailable(InputError):
    code = "E102"


class UnknownRun(InputError):
    code = "E103"


class RunbookChanged(InputError):
    code = "E104"

    def __init__(self, summary: list[str]) -> None:
        self.summary = summary
        super().__init__(
            "the runbook changed since this run began:\n  "
            + "\n  ".join(summary)
            + "\nresume with --accept-changes to continue with the new file"
        )


class MissingDependency(InputError):
    code = "E105"

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"this step type needs the Python module '{module}'; "
            f"install it with: pip install 'paas-runbook[{extra}]'"
        )


class StoreError(RunbookError):
    code = "E200"
    exit_code = 2


class CorruptState(StoreError):
    code = "E201"


class LockHeld(StoreError):
    code = "E202"

    def __init__(self, name: str, holder: dict[str, Any]) -> None:
        self.name = name
        self.holder = holder
        first = [k for k in ("run", "pid", "host", "since") if k in holder]
        who = ", ".join(f"{k}={holder[k]}" for k in first + sorted(set(holder) - set(first)))
        super().__init__(
            f"lock '{name}' is held by {who}; if that process is gone, "
            f"break the lock with: runbook unlock '{name}'"
        )


class StepError(RunbookError):
    code = "E300"

    def __init__(self, message: str, *, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        # What the step had done before failing, so its partial work can be undone.
        self.record = record


class StepFailed(StepError):
    code = "E301"


class StepTimedOut(StepError):
    code = "E302"


class StepCancelled(StepError):
    code = "E303"


class NotReversible(StepError):
    code = "E304"


class RevertFailed(RunbookError):
    code = "E400"


class Stopped(RunbookError):
    code = "E500"
    exit_code = 3


class WindowClosed(Stopped):
    code = "E501"


class GoNoGoRefused(Stopped):
    code = "E502"


class ApprovalPending(Stopped):
    code = "E503"


class InterruptedStep(Stopped):
    code = "E504"


class Interrupted(Stopped):
    code = "E505"
