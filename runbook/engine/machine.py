"""Run and step lifecycles as data. This is the only module that imports ``transitions``.

Each row of a table is one allowed transition: (trigger, from-states, to-state).
The engine never assigns a state directly: it fires a trigger, and an illegal trigger
is a bug that stops the run before anything is written.
"""

from __future__ import annotations

from typing import Any

from transitions import Machine, MachineError

# -- step lifecycle ---------------------------------------------------------------------
STEP_STATES = [
    "pending",        # not started (or sent back after a pause)
    "running",        # durable before apply is called; found at resume = interrupted
    "succeeded",      # apply (and verify) finished; outputs and record stored with it
    "skipped",        # 'when' was false, or the operator skipped an interrupted step
    "failed",         # apply/verify raised or timed out; partial record may exist
    "cancelled",      # stopped because a sibling failed or the operator interrupted
    "reverting",      # durable before revert is called; found at resume = redo revert
    "reverted",       # revert finished
    "revert_failed",  # revert raised: terminal, a human must check
]

STEP_TRANSITIONS = [
    # trigger      from                                      to
    # start: checkpointed before apply is called
    ("start",      "pending",                                "running"),
    # succeed: outputs and record are written in the same transaction
    ("succeed",    "running",                                "succeeded"),
    # recover: after a crash, verify said the interrupted apply had finished
    ("recover",    "running",                                "succeeded"),
    ("fail",       "running",                                "failed"),
    ("cancel",     "running",                                "cancelled"),
    # pause: an approval or the window stopped it before any work
    ("pause",      "running",                                "pending"),
    # rerun: resume decided that the interrupted step runs again
    ("rerun",      ["running", "cancelled"],                 "pending"),
    ("skip",       ["pending", "running", "cancelled"],      "skipped"),
    ("revert",     ["succeeded", "failed", "cancelled", "reverting"], "reverting"),
    ("reverted",   "reverting",                              "reverted"),
    ("revert_fail", "reverting",                             "revert_failed"),
]

# -- run lifecycle ----------------------------------------------------------------------
RUN_STATES = [
    "created",          # stored, nothing executed yet
    "running",          # the engine drives it
    "paused",           # stopped on purpose: window, go/no-go, approval, Ctrl-C (exit 3)
    "succeeded",        # every step succeeded or was skipped
    "failed",           # a step failed and no rollback ran (on_failure: stop)
    "rolling_back",     # reverting completed steps, newest first
    "rolled_back",      # rollback finished
    "rollback_failed",  # a revert failed: a human must check
]

RUN_TRANSITIONS = [
    # trigger        from                                                  to
    ("start",        ["created", "paused", "failed", "running"],           "running"),
    ("pause",        "running",                                            "paused"),
    ("succeed",      "running",                                            "succeeded"),
    ("fail",         "running",                                            "failed"),
    ("roll_back",    ["running", "paused", "failed", "succeeded", "rolling_back",
                      "rollback_failed", "rolled_back"],                   "rolling_back"),
    ("rolled_back",  "rolling_back",                                       "rolled_back"),
    ("rollback_fail", "rolling_back",                                      "rollback_failed"),
]

TERMINAL_RUN = {"succeeded", "rolled_back"}


class IllegalTransition(RuntimeError):
    """A bug: the engine fired a trigger the current state does not allow."""


class _Model:
    state: str


def _machine(states: list[str], table: list[tuple[str, Any, str]]) -> Machine:
    return Machine(model=None, states=states, initial=states[0], auto_transitions=False,
                   transitions=[{"trigger": t, "source": s, "dest": d} for t, s, d in table])


_STEP_MACHINE = _machine(STEP_STATES, STEP_TRANSITIONS)
_RUN_MACHINE = _machine(RUN_STATES, RUN_TRANSITIONS)


def _fire(machine: Machine, state: str, trigger: str) -> str:
    model = _Model()
    machine.add_model(model, initial=state)
    try:
        ok = model.trigger(trigger)  # type: ignore[attr-defined]
    except MachineError as exc:
        raise IllegalTransition(f"cannot '{trigger}' from '{state}': {exc.value}") from None
    finally:
        machine.remove_model(model)
    if ok is not True:
        raise IllegalTransition(f"trigger '{trigger}' from '{state}' was refused")
    return model.state


# The machines have no conditions or callbacks, so an answer for (state, trigger) never
# changes: it is asked of transitions once and remembered (a fire costs ~0.1 ms otherwise).
_ANSWERS: dict[tuple[int, str, str], str | IllegalTransition] = {}


def _next(machine: Machine, state: str, trigger: str) -> str:
    key = (id(machine), state, trigger)
    answer = _ANSWERS.get(key)
    if answer is None:
        try:
            answer = _fire(machine, state, trigger)
        except IllegalTransition as exc:
            answer = exc
        _ANSWERS[key] = answer
    if isinstance(answer, IllegalTransition):
        raise IllegalTransition(str(answer))
    return answer


def step_next(state: str, trigger: str) -> str:
    """The state a step reaches by ``trigger`` from ``state``; raises IllegalTransition."""
    return _next(_STEP_MACHINE, state, trigger)


def run_next(state: str, trigger: str) -> str:
    return _next(_RUN_MACHINE, state, trigger)
