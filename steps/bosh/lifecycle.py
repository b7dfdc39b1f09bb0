"""``bosh.stop`` and ``bosh.start``: instance groups one by one, in a declared order.

Both steps observe ``bosh instances --ps --details`` first and act only on instances that
are not already in the wanted state, recording each instance's previous state before
touching its group (``ctx.checkpoint``), so that revert - also after a failure halfway -
changes back exactly the instances this step changed and nothing else. The director's
resurrector is switched off before the first group so it does not recreate VMs we are
stopping on purpose; how it is left afterwards is the ``resurrection`` parameter. The v2
CLI cannot read the switch, so "restore" means switching it back on.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from runbook.api import Action, Plan, Result, Step, StepContext, StepFailed, param
from steps.bosh import order
from steps.bosh.client import BoshCli, BoshError, Instance
from steps.bosh.common import BoshParams, deployment_name, director


@dataclass(frozen=True, kw_only=True)
class GroupsParams(BoshParams):
    instance_groups: list[str] = param(factory=list, doc="instance groups, in order")
    health_manager: order.Era = param("none", doc="era of the health manager to include: "
                                      "hm9000 (cf-release), diego (cf-deployment) or none")
    health_manager_groups: list[str] | None = param(None, doc="name the health-manager "
                                                    "groups explicitly instead")


@dataclass(frozen=True, kw_only=True)
class StopParams(GroupsParams):
    mode: Literal["soft", "hard"] = param("soft", doc="soft: stop processes; hard: delete "
                                          "the VM but keep the persistent disk")
    resurrection: Literal["pause", "off", "untouched"] = param(
        "pause", doc="pause: off before, on after; off: off before and left off")


@dataclass(frozen=True, kw_only=True)
class StartParams(GroupsParams):
    resurrection: Literal["pause", "on", "untouched"] = param(
        "pause", doc="pause: off before, on after; on: switched on after the last group")


def observe_groups(ctx: StepContext, params: GroupsParams) -> dict[str, Any]:
    bosh = director(ctx, params)
    groups: dict[str, list[dict[str, Any]]] = {}
    for inst in bosh.instances():
        groups.setdefault(inst.group, []).append(_facts(inst))
    wanted = params.instance_groups + (params.health_manager_groups or [])
    unknown = [g for g in wanted if g not in groups]
    if unknown:
        raise StepFailed(f"instance group(s) {', '.join(unknown)} not found in deployment "
                         f"'{bosh.settings.deployment}' (it has: {', '.join(groups) or 'none'})")
    hm = order.health_manager_groups(params.health_manager, params.health_manager_groups,
                                     groups)
    if params.health_manager != "none" and not hm:
        raise StepFailed(f"health_manager '{params.health_manager}': no such instance group in "
                         f"deployment '{bosh.settings.deployment}'; name it with "
                         "health_manager_groups")
    return {"deployment": bosh.settings.deployment, "groups": groups, "health_manager": hm}


def _facts(inst: Instance) -> dict[str, Any]:
    return {"id": inst.id, "state": inst.state or "started",
            "process_state": inst.process_state,
            "processes": [p.name for p in inst.processes]}


def work_items(sequence: list[str], groups: dict[str, list[dict[str, Any]]],
               needs: Any) -> list[dict[str, Any]]:
    """Per group in order: which instances need changing and the selectors for bosh
    (the whole group when every instance needs it, else ``group/id`` each)."""
    items = []
    for group in sequence:
        instances = groups.get(group, [])
        todo = [i for i in instances if needs(i)]
        if not todo:
            continue
        whole = len(todo) == len(instances)
        items.append({"group": group,
                      "selectors": [group] if whole else [f"{group}/{i['id']}" for i in todo],
                      "prior": {i["id"]: i["state"] for i in todo}})
    return items


def _health_manager(params: GroupsParams, facts: dict[str, Any] | None) -> list[str]:
    if facts is None or (params.health_manager == "none" and not params.health_manager_groups):
        return order.health_manager_groups(params.health_manager,
                                           params.health_manager_groups, None)
    return list(facts["health_manager"])


def _needs_stop(hard: bool) -> Any:
    if hard:
        return lambda i: i["state"] != "detached"
    return lambda i: i["state"] not in ("stopped", "detached") or i["process_state"] == "running"


def _needs_start(i: dict[str, Any]) -> bool:
    return bool(i["state"] != "started" or i["process_state"] != "running")


class _GroupStep(Step[GroupsParams]):
    verb = ""

    def observe(self, ctx: StepContext, params: GroupsParams) -> dict[str, Any]:
        return observe_groups(ctx, params)

    @abstractmethod
    def sequence(self, params: GroupsParams, facts: dict[str, Any] | None) -> list[str]:
        """Provided by the stop and start step types."""

    @abstractmethod
    def items(self, params: Any, facts: dict[str, Any]) -> list[dict[str, Any]]:
        """Provided by the stop and start step types."""

    @abstractmethod
    def command(self, params: Any, dep: str, selector: str) -> str:
        """Provided by the stop and start step types."""

    @abstractmethod
    def act(self, bosh: BoshCli, params: Any, selector: str) -> Any:
        """Provided by the stop and start step types."""

    def plan(self, params: Any, facts: dict[str, Any] | None) -> Plan:
        sequence = self.sequence(params, facts)
        if facts is None:
            dep = deployment_name(params)
            lines = [Action.change(self.command(params, dep, g)) for g in sequence]
            return Plan.of(*self._wrap(params, lines), reason="instance states not observed")
        dep = facts["deployment"]
        items = self.items(params, facts)
        if not items:
            return Plan.unchanged(f"all instances of {', '.join(sequence) or 'no groups'} in "
                                  f"'{dep}' are already {self.verb}ped")
        lines = []
        for item in items:
            count = len(item["prior"])
            for n, selector in enumerate(item["selectors"]):
                suffix = f" ({count} instance{'s' if count > 1 else ''})" if n == 0 else ""
                lines.append(Action.change(self.command(params, dep, selector) + suffix))
        skipped = [g for g in sequence if g not in {i["group"] for i in items}]
        note = f"already {self.verb}ped: {', '.join(skipped)}" if skipped else ""
        return Plan.of(*self._wrap(params, lines), reason=note)

    def _wrap(self, params: Any, lines: list[Action]) -> list[Action]:
        mode = params.resurrection
        before = [Action.change("bosh update-resurrection off")] if mode in ("pause", "off") \
            else []
        after = [Action.change("bosh update-resurrection on")] if mode in ("pause", "on") else []
        return before + lines + after

    def apply(self, ctx: StepContext, params: Any, plan: Plan) -> Result:
        bosh = director(ctx, params)
        facts = observe_groups(ctx, params)  # act on fresh facts, not the plan's
        items = self.items(params, facts)
        record: dict[str, Any] = {"deployment": facts["deployment"], "items": [],
                                  "resurrection": params.resurrection,
                                  "resurrection_changed": False}
        outputs: dict[str, Any] = {"deployment": facts["deployment"], "groups": [],
                                   "instances": 0, "task_ids": []}
        if not items:
            return Result(outputs=outputs, record=record, changed=False)
        try:
            if params.resurrection in ("pause", "off"):
                record["resurrection_changed"] = True
                ctx.checkpoint(record)
                bosh.set_resurrection(False)
            for item in items:
                ctx.check_cancelled()
                record["items"].append(item)
                ctx.checkpoint(record)  # before acting: a half-done group is undone too
                for selector in item["selectors"]:
                    outcome = self.act(bosh, params, selector)
                    outputs["task_ids"].append(outcome.task_id)
                outputs["groups"].append(item["group"])
                outputs["instances"] += len(item["prior"])
            if params.resurrection in ("pause", "on"):
                record["resurrection_changed"] = True
                ctx.checkpoint(record)
                bosh.set_resurrection(True)
        except BoshError as exc:
            done = ", ".join(outputs["groups"]) or "none"
            raise StepFailed(f"{exc} - {self.verb}ped so far: {done}; roll back to undo "
                             "exactly those", record=record) from None
        return Result(outputs=outputs, record=record)

    def verify(self, ctx: StepContext, params: Any, result: Result | None) -> bool | None:
        facts = observe_groups(ctx, params)
        return not self.items(params, facts)

    def revert_plan(self, params: Any, record: dict[str, Any]) -> Plan:
        dep = record.get("deployment", deployment_name(params))
        lines = [Action.change(line) for line in self._undo_lines(params, record, dep)]
        return Plan.of(*lines) if lines else Plan.unchanged(f"nothing was {self.verb}ped")

    @abstractmethod
    def _undo_lines(self, params: Any, record: dict[str, Any], dep: str) -> list[str]:
        """Provided by the stop and start step types."""

    def _resurrection_around(self, bosh: BoshCli, record: dict[str, Any], work: Any) -> None:
        """Undo with the resurrector off; afterwards leave it as it was before apply."""
        touched = record.get("resurrection_changed")
        if touched:
            bosh.set_resurrection(False)
        work()
        if touched and record["resurrection"] in ("pause", "off"):
            bosh.set_resurrection(True)


class StopInstances(_GroupStep):
    """Stop instance groups in order (health manager first), resurrection off first.

    Reads target keys ``bosh.*`` (see :mod:`steps.bosh.common`). Outputs ``deployment``,
    ``groups`` (stopped, in order), ``instances`` (count), ``task_ids``.
    Revert starts exactly the instances this step stopped, newest group first.
    """

    Params = StopParams
    verb = "stop"
    idempotent = True
    outputs = ("deployment", "groups", "instances", "task_ids")

    def sequence(self, params: GroupsParams, facts: dict[str, Any] | None) -> list[str]:
        hm = _health_manager(params, facts)
        return order.stop_sequence(params.instance_groups, hm)

    def items(self, params: Any, facts: dict[str, Any]) -> list[dict[str, Any]]:
        return work_items(self.sequence(params, facts), facts["groups"],
                          _needs_stop(params.mode == "hard"))

    def command(self, params: Any, dep: str, selector: str) -> str:
        return f"bosh -d {dep} stop {selector} --{params.mode}"

    def act(self, bosh: BoshCli, params: Any, selector: str) -> Any:
        return bosh.stop(selector, hard=params.mode == "hard")

    def _undo_lines(self, params: Any, record: dict[str, Any], dep: str) -> list[str]:
        return [f"bosh -d {dep} start {s}" for item in reversed(record.get("items", []))
                for s in item["selectors"]]

    def revert(self, ctx: StepContext, params: Any, record: dict[str, Any]) -> None:
        bosh = director(ctx, params)

        def work() -> None:
            for item in reversed(record.get("items", [])):
                for selector in item["selectors"]:
                    bosh.start(selector)  # starting a running instance changes nothing

        self._resurrection_around(bosh, record, work)


class StartInstances(_GroupStep):
    """Start instance groups in order (health manager last), resurrection restored after.

    Reads target keys ``bosh.*`` (see :mod:`steps.bosh.common`). Outputs ``deployment``,
    ``groups`` (started, in order), ``instances`` (count), ``task_ids``.
    Revert stops exactly the instances this step started, each the way it was stopped
    before (``--hard`` for a VM-less instance, else ``--soft``).
    """

    Params = StartParams
    verb = "start"
    idempotent = True
    outputs = ("deployment", "groups", "instances", "task_ids")

    def sequence(self, params: GroupsParams, facts: dict[str, Any] | None) -> list[str]:
        hm = _health_manager(params, facts)
        return order.start_sequence(params.instance_groups, hm)

    def items(self, params: Any, facts: dict[str, Any]) -> list[dict[str, Any]]:
        return work_items(self.sequence(params, facts), facts["groups"], _needs_start)

    def command(self, params: Any, dep: str, selector: str) -> str:
        return f"bosh -d {dep} start {selector}"

    def act(self, bosh: BoshCli, params: Any, selector: str) -> Any:
        return bosh.start(selector)

    def _undo_calls(self, record: dict[str, Any]) -> list[tuple[str, bool]]:
        calls = []
        for item in reversed(record.get("items", [])):
            prior = {i: s for i, s in item["prior"].items() if s in ("stopped", "detached")}
            kinds = set(prior.values())
            if item["selectors"] == [item["group"]] and len(prior) == len(item["prior"]) \
                    and len(kinds) == 1:
                calls.append((item["group"], kinds == {"detached"}))
            else:
                calls += [(f"{item['group']}/{i}", s == "detached") for i, s in prior.items()]
        return calls

    def _undo_lines(self, params: Any, record: dict[str, Any], dep: str) -> list[str]:
        return [f"bosh -d {dep} stop {sel} --{'hard' if hard else 'soft'}"
                for sel, hard in self._undo_calls(record)]

    def revert(self, ctx: StepContext, params: Any, record: dict[str, Any]) -> None:
        bosh = director(ctx, params)

        def work() -> None:
            for selector, hard in self._undo_calls(record):
                bosh.stop(selector, hard=hard)

        touched = record.get("resurrection_changed")
        if touched:
            bosh.set_resurrection(False)
        work()
        # pause found it on (by assumption) and leaves it on; "on" found it off.
        if touched and record["resurrection"] == "pause":
            bosh.set_resurrection(True)
