"""Every runbook shipped in ``runbooks/`` validates and plans through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Cli

RUNBOOKS = sorted(p.relative_to(ROOT) for p in (ROOT / "runbooks").rglob("*.yml"))


def test_the_readme_lists_every_runbook() -> None:
    readme = (ROOT / "runbooks" / "README.md").read_text()
    for path in RUNBOOKS:
        assert f"`{path.relative_to('runbooks')}`" in readme, path


def test_there_are_runbooks_to_check() -> None:
    names = {p.name for p in RUNBOOKS}
    assert {"cf-vcloud-to-openstack.yml", "openstack-to-openstack.yml"} <= names
    assert len([p for p in RUNBOOKS if p.parent.name == "examples"]) >= 3


@pytest.mark.parametrize("path", RUNBOOKS, ids=str)
def test_validates(cli: Cli, path: Path) -> None:
    done = cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: ok (")


@pytest.mark.parametrize("path", RUNBOOKS, ids=str)
def test_plans_without_side_effects(cli: Cli, path: Path) -> None:
    done = cli("plan", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("plan for ")
    assert "nothing will be changed by this command" in done.stdout
    assert not (cli.tmp / "state.db").exists(), "plan must not create a state store"


def test_all_at_once(cli: Cli) -> None:
    done = cli("validate", *map(str, RUNBOOKS))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": ok (") == len(RUNBOOKS)


def test_reference_plan_marks_window_and_point_of_no_return(cli: Cli) -> None:
    done = cli("plan", "runbooks/cf-vcloud-to-openstack.yml")
    lines = done.stdout.splitlines()
    switch = next(line for line in lines if "switch-gateway (gateway.switch)" in line)
    assert "POINT OF NO RETURN" in switch and "downtime" in switch
    rewrite = next(line for line in lines if "rewrite-ccdb (ccdb.rewrite_hosts)" in line)
    assert "[downtime]" in rewrite


def test_every_other_file_is_read_by_a_runbook() -> None:
    """Besides runbooks (``*.yml``) and its README, runbooks/ holds only inputs a runbook
    names."""
    texts = "".join(p.read_text() for p in (ROOT / "runbooks").rglob("*.yml"))
    others = [p for p in (ROOT / "runbooks").rglob("*")
              if p.is_file() and p.suffix != ".yml" and p.name != "README.md"]
    for path in others:
        assert str(path.relative_to(ROOT)) in texts, f"{path} is neither a runbook nor used"
