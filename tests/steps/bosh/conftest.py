"""Fixtures for the BOSH steps: a simulated director reached through a real ``bosh``
executable on disk (runbook.lab.bosh_sim), so the client runs exactly as in production."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runbook.lab.bosh_sim import BoshSim
from runbook.testing import make_context

SECRET = "sim-client-secret-7d1f"
ENVIRON = {"BOSH_TEST_SECRET": SECRET}


@dataclass
class Director:
    """A simulated director plus the helpers tests need (no imports from conftest)."""

    sim: BoshSim
    cli: Path
    secret: str = SECRET
    environ: Any = None
    cf_manifest: str = ""

    def profile(self, deployment: str = "cf") -> dict[str, Any]:
        return {"bosh": {"environment": "https://10.1.0.6:25555", "client": "admin",
                         "client_secret": "${env:BOSH_TEST_SECRET}", "deployment": deployment,
                         "cli": str(self.cli)}}

    def seed(self, manifest: str | None = None, cloud_config: str | None = None) -> None:
        """Give the director a running 'cf' deployment (and a cloud config)."""
        _seed(self, manifest or CF_MANIFEST, cloud_config or CLOUD_CONFIG)

    def commands(self) -> list[str]:
        """The bosh commands the director received, without the global flags."""
        return _commands(self)

    def states(self, deployment: str = "cf") -> dict[str, set[str]]:
        """Instance group -> set of instance states."""
        out: dict[str, set[str]] = {}
        for inst in self.sim.instances(deployment):
            out.setdefault(inst["group"], set()).add(inst["state"])
        return out


def new_director(root: Path, name: str) -> Director:
    home = root / name
    home.mkdir()
    sim = BoshSim(home / "state.json")
    sim.require_credentials("admin", SECRET)
    return Director(sim, sim.install(home), SECRET, ENVIRON, CF_MANIFEST)


@pytest.fixture
def director(tmp_path: Path) -> Director:
    return new_director(tmp_path, "dest")


@pytest.fixture
def source_director(tmp_path: Path) -> Director:
    return new_director(tmp_path, "source")


@pytest.fixture
def make_ctx(tmp_path: Path) -> Any:
    """make_ctx(dest=director, source=other) -> a StepContext with those targets."""
    def build(**directors: Director) -> Any:
        targets = {name: d.profile() for name, d in directors.items()}
        run = tmp_path / "run"
        run.mkdir(exist_ok=True)
        return make_context(run, targets=targets, environ=ENVIRON)
    return build


CF_MANIFEST = """
name: cf
instance_groups:
- {name: nats, instances: 2, azs: [z1, z2], vm_type: small, networks: [{name: default}], jobs: [{name: nats}]}
- {name: hm9000, instances: 2, azs: [z1, z2], vm_type: small, networks: [{name: default}], jobs: [{name: hm9000}]}
- {name: cc_db, instances: 1, azs: [z1], vm_type: small, persistent_disk_type: data, networks: [{name: default}], jobs: [{name: postgres}]}
- {name: uaa_db, instances: 1, azs: [z2], vm_type: small, persistent_disk_type: data, networks: [{name: default}], jobs: [{name: postgres}]}
- {name: nfs_server, instances: 1, azs: [z1], vm_type: small, persistent_disk_type: data, networks: [{name: default}], jobs: [{name: debian_nfs_server}]}
- {name: api, instances: 2, azs: [z1, z2], vm_type: small, networks: [{name: default}], jobs: [{name: cloud_controller_ng}]}
"""

CLOUD_CONFIG = """
azs: [{name: z1}, {name: z2}]
vm_types: [{name: small}]
disk_types: [{name: data, disk_size: 1000}]
networks: [{name: default, type: manual, subnets: [{az: z1, range: 10.0.1.0/24}, {az: z2, range: 10.0.2.0/24}]}]
"""


def _seed(d: Director, manifest: str = CF_MANIFEST, cloud_config: str = CLOUD_CONFIG) -> None:
    with d.sim.edit() as state:
        state["cloud_config"] = cloud_config
    d.sim.deploy_text("cf", manifest)


def _commands(d: Director) -> list[str]:
    out = []
    for argv in d.sim.calls():
        words = [a for a in argv if a not in ("--json", "--non-interactive")]
        if words[:1] == ["-d"]:
            words = words[2:]
        out.append(" ".join(words))
    return out
