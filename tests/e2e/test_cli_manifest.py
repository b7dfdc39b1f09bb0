"""`runbook manifest render` writes a manifest and cloud config; bad variables exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("iaas", ["vcloud", "openstack", "aws", "cloudstack"])
def test_render_writes_both_files(tmp_path: Path, iaas: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cf.yml"
    code = main(["manifest", "render", "--iaas", iaas, "--vars",
                 str(ROOT / "manifests/examples/cf.yml"), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    manifest = yaml.safe_load(out.read_text())
    cloud = yaml.safe_load((tmp_path / "cf.cloud-config.yml").read_text())
    assert manifest["instance_groups"]
    assert cloud["vm_types"] or cloud.get("vm_extensions") is not None
    assert f"wrote {out}" in capsys.readouterr().out


def test_missing_variable_is_an_input_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "vars.yml"
    bad.write_text("name: cf\n")
    code = main(["manifest", "render", "--iaas", "openstack", "--vars", str(bad), "-o",
                 str(tmp_path / "out.yml")])
    assert code == 2
    assert "manifest variables: 'instance_groups' must be a list" in capsys.readouterr().err
    assert not (tmp_path / "out.yml").exists()
