"""Manifest rendering: golden files per IaaS, the AZ spread, strict templates, the diff."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from steps.bosh.manifest import (
    IAAS,
    ManifestError,
    load_variables,
    render_manifest,
    render_texts,
    spread,
    structural_diff,
    zone_counts,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "manifests" / "examples" / "cf.yml"
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("iaas", IAAS)
def test_rendered_manifests_match_golden_files(iaas: str) -> None:
    rendered = render_texts(iaas, EXAMPLE)
    for name, text in (("manifest.yml", rendered.manifest),
                       ("cloud-config.yml", rendered.cloud_config)):
        golden = GOLDEN / iaas / name
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), f"{golden} differs (UPDATE_GOLDEN=1 to refresh)"


def test_deployment_manifest_is_the_same_on_every_iaas() -> None:
    manifests = {render_texts(i, EXAMPLE).manifest for i in IAAS}
    assert len(manifests) == 1


def test_vcloud_to_openstack_diff_is_the_cloud_properties_of_seed_000() -> None:
    old = render_texts("vcloud", EXAMPLE).cloud_config
    new = render_texts("openstack", EXAMPLE).cloud_config
    diff = structural_diff(old, new)
    assert "- vm_types[small].cloud_properties.cpu: 2" in diff
    assert "- vm_types[small].cloud_properties.ram: 1024" in diff
    assert "+ vm_types[small].cloud_properties.instance_type: any-infr-small" in diff
    assert "- networks[default].subnets.0.cloud_properties.name: anynines" not in diff
    assert any(line.startswith("~ networks[default].subnets") for line in diff)
    assert "+ azs[z1].cloud_properties.availability_zone: nova-a" in diff
    assert not any("disk_size" in line for line in diff)  # persistent disk size unchanged


def test_spread_balances_zones_and_never_puts_a_redundant_group_in_one_zone() -> None:
    data = load_variables(EXAMPLE)
    groups, azs = data["instance_groups"], data["azs"]
    placement = spread(groups, azs)
    for group in groups:
        assert len(placement[group["name"]]) == min(group["instances"], len(azs))
    counts = zone_counts(groups, placement, azs)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert sum(counts.values()) == sum(g["instances"] for g in groups)
    # the three singletons with persistent disks are not all in the first zone
    assert {placement[g][0] for g in ("cc_db", "uaa_db", "nfs_server")} == {"z1", "z2"}


def test_spread_over_three_zones_and_pinned_groups() -> None:
    groups = [{"name": "a", "instances": 1}, {"name": "b", "instances": 1},
              {"name": "c", "instances": 1}, {"name": "r", "instances": 5},
              {"name": "p", "instances": 2, "azs": ["z3"]}]
    placement = spread(groups, ["z1", "z2", "z3"])
    assert placement["r"] == ["z1", "z2", "z3"] and placement["p"] == ["z3"]
    # r puts 2/2/1 and p 2 into z3, so the singletons fill z1 and z2 first
    assert [placement[g] for g in "abc"] == [["z1"], ["z2"], ["z1"]]
    assert zone_counts(groups, placement, ["z1", "z2", "z3"]) == {"z1": 4, "z2": 3, "z3": 3}
    with pytest.raises(ManifestError, match="instance group 'x' names unknown zone"):
        spread([{"name": "x", "azs": ["z9"]}], ["z1"])


def test_missing_variable_names_the_template_file_and_line() -> None:
    data = load_variables(EXAMPLE)
    del data["iaas"]["aws"]["azs"]
    with pytest.raises(ManifestError) as err:
        render_texts("aws", data)
    text = str(err.value)
    line = next(n for n, s in enumerate((ROOT / "manifests/iaas/aws.j2").read_text()
                                        .splitlines(), 1) if "macro az_properties" in s)
    assert text == f"manifests/iaas/aws.j2:{line}: 'dict object' has no attribute 'azs'"


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    templates = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", templates)
    (templates / "iaas" / "openstack.j2").write_text("{% macro az_properties(az) %}\n{{ x \n")
    with pytest.raises(ManifestError, match=r"^manifests/iaas/openstack.j2:2: "):
        render_texts("openstack", EXAMPLE, templates)


def test_sandbox_refuses_unsafe_attribute_access(tmp_path: Path) -> None:
    templates = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", templates)
    (templates / "deployment.yml.j2").write_text("name: {{ name.__class__.__mro__ }}\n")
    with pytest.raises(ManifestError, match=r"^manifests/deployment.yml.j2:1: .*unsafe"):
        render_texts("vcloud", EXAMPLE, templates)


def test_unknown_iaas_and_bad_variables_are_clear() -> None:
    with pytest.raises(ManifestError, match="unknown IaaS 'gce'; choose one of vcloud, "
                                            "openstack, aws, cloudstack"):
        render_texts("gce", EXAMPLE)
    with pytest.raises(ManifestError, match="'instance_groups' must be a list"):
        render_texts("aws", {"azs": ["z1"]})


def test_render_manifest_writes_manifest_and_cloud_config(tmp_path: Path) -> None:
    out = tmp_path / "out" / "cf.yml"
    rendered = render_manifest("cloudstack", EXAMPLE, out)
    assert rendered.manifest_path == out
    assert rendered.cloud_config_path == tmp_path / "out" / "cf.cloud-config.yml"
    cloud = yaml.safe_load(rendered.cloud_config_path.read_text())
    assert cloud["vm_types"][0]["cloud_properties"]["instance_type"] == "2vCPU.4GB"
    assert yaml.safe_load(out.read_text())["name"] == "cf"


def test_cloudstack_basic_zone_uses_dynamic_networks_with_security_groups() -> None:
    data = load_variables(EXAMPLE)
    data["iaas"]["cloudstack"]["zone_type"] = "basic"
    cloud = yaml.safe_load(render_texts("cloudstack", data).cloud_config)
    (net,) = cloud["networks"]
    assert net["type"] == "dynamic"
    assert net["subnets"][0]["cloud_properties"] == {"security_groups": ["cf"]}
    assert "range" not in net["subnets"][0]
