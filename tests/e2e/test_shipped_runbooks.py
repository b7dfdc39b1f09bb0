"""The other shipped runbooks rehearse too: OpenStack -> OpenStack in a lab of its own,
the teaching examples with or without one (an example that names no targets needs none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Cli, outputs, write_targets

pytestmark = pytest.mark.slow

EXAMPLES = sorted((ROOT / "runbooks" / "examples").glob("*.yml"))


def test_openstack_to_openstack(lab: Any, cli: Cli, tmp_path: Path) -> None:
    targets = write_targets(lab, tmp_path / "lab-targets.yml")

    done = cli("rehearse", "runbooks/openstack-to-openstack.yml", "--targets", str(targets))

    assert done.returncode == 0, done.stdout + done.stderr
    _, state, rows = outputs(tmp_path / "state.db")
    assert state == "succeeded"
    assert rows["import-network"].outputs["created"]
    volume = rows["import-nfs-volume"].outputs["volume_id"]
    assert rows["attach-nfs-volume"].outputs["disk_cid"] == volume
    nfs = [i for i in lab.handles["bosh_destination"].instances("cf")
           if i["group"] == "nfs_server"]
    assert nfs[0]["disks"] == [volume]
    assert lab.handles["openstack_destination"].find("networks", name="cf")
    assert rows["compare-routes"].outputs["passed"] is True


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples(path: Path, cli: Cli, tmp_path: Path, request: pytest.FixtureRequest
                  ) -> None:
    import yaml

    args = ["rehearse", str(path)]
    if yaml.safe_load(path.read_text()).get("targets"):
        lab = request.getfixturevalue("lab")
        args += ["--targets", str(write_targets(lab, tmp_path / "lab-targets.yml"))]
    # From the test's directory: whatever an example writes stays there.
    done = cli(*args, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "lab: starting" not in done.stdout
    _, state, _ = outputs(tmp_path / "state.db")
    assert state == "succeeded"
