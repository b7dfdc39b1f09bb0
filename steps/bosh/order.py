"""In which order instance groups stop and start, and what "the health manager" is.

seeds/000: stop the health manager first (so the Cloud Controller side does not try to
restart every app while things are down), then the instances with persistent disks
(cc_db, uaa_db, nfs_server, service nodes); start in the opposite sense, with the health
manager last. Which instance groups are "the health manager" depends on the era
(reference section 6):

* ``hm9000`` - cf-release: HM9000 jobs ``hm9000_z1``/``hm9000_z2`` (monit processes
  ``hm9000_*``); every group whose name starts with ``hm9000`` or that runs an
  ``hm9000_*`` process.
* ``diego`` - cf-deployment: ``scheduler`` (the cloud_controller_clock's diego_sync) and
  ``diego-api`` (BBS convergence). Stopping diego-api also stops new placements; apps
  already on cells keep running. That this is the right analogue is a design judgement,
  not a documented equivalence, so the runbook chooses it explicitly.
* ``none`` - the runbook lists what to stop itself.
"""

from __future__ import annotations

from typing import Any, Literal

Era = Literal["none", "hm9000", "diego"]
DIEGO_GROUPS = ("scheduler", "diego-api")


def health_manager_groups(era: str, explicit: list[str] | None,
                          groups: dict[str, list[dict[str, Any]]] | None) -> list[str]:
    """The health-manager instance groups present in the deployment (``groups`` maps a
    group to its instances as observed; None when unknown)."""
    if explicit is not None:
        return list(explicit)
    if era == "none":
        return []
    if era == "diego":
        if groups is None:
            return list(DIEGO_GROUPS)
        return [g for g in DIEGO_GROUPS if g in groups]
    if groups is None:
        return ["<hm9000 groups>"]  # found when the deployment is observed
    found = []
    for name, instances in groups.items():
        procs = {p for i in instances for p in i.get("processes", [])}
        if name.startswith("hm9000") or any(p.startswith("hm9000") for p in procs):
            found.append(name)
    return found


def stop_sequence(declared: list[str], health_manager: list[str]) -> list[str]:
    """Health manager first, then the declared groups in their order."""
    return _dedupe(health_manager + declared)


def start_sequence(declared: list[str], health_manager: list[str]) -> list[str]:
    """The declared groups in their order, then the health manager last."""
    return _dedupe([g for g in declared if g not in health_manager] + health_manager)


def _dedupe(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return [n for n in names if not (n in seen or seen.add(n))]  # type: ignore[func-returns-value]
