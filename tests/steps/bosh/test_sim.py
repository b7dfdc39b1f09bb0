"""The director simulator as an executable: output shapes, shell steering, the lab API."""

from __future__ import annotations

import json
import os
import subprocess

from runbook.lab.bosh_sim import BoshLab, keyify

ENV = {"BOSH_ENVIRONMENT": "https://10.0.0.6:25555", "BOSH_CLIENT": "admin",
       "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
MANIFEST = """
name: cf
instance_groups:
- {name: cc_db, instances: 1, azs: [z1], vm_type: small, networks: [{name: default}],
   persistent_disk_type: data, jobs: [{name: postgres}]}
"""
CLOUD = """
azs: [{name: z1}]
vm_types: [{name: small}]
disk_types: [{name: data, disk_size: 1000}]
networks: [{name: default, type: manual, subnets: [{az: z1, range: 10.0.1.0/24}]}]
"""


def bosh(lab: BoshLab, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = subprocess.run([str(lab.cli), "--json", *args], env=env or ENV,
                          capture_output=True, text=True)
    return done.returncode, json.loads(done.stdout)


def test_keyify_matches_bosh_cli_header_keys() -> None:
    assert [keyify(t) for t in ("Process State", "IPs", "VM CID", "Release(s)", "Disk CIDs")] \
        == ["process_state", "ips", "vm_cid", "release_s", "disk_cids"]


def test_shapes_of_deployments_instances_and_errors(tmp_path) -> None:
    with BoshLab(tmp_path / "d") as lab:
        code, out = bosh(lab, "deployments")
        assert code == 0 and set(out) == {"Tables", "Blocks", "Lines"}
        assert out["Tables"][0]["Header"] == {"name": "Name", "release_s": "Release(s)",
                                              "stemcell_s": "Stemcell(s)", "team_s": "Team(s)"}
        code, out = bosh(lab, "-d", "cf", "manifest")
        assert code == 1 and "Deployment 'cf' doesn't exist" in out["Lines"][1]
        assert out["Lines"][-1] == "Exit code 1"

        lab.seed("cf", MANIFEST, CLOUD)
        code, out = bosh(lab, "-d", "cf", "instances", "--ps", "-i")
        (table,) = out["Tables"]
        assert table["Content"] == "instances"
        assert list(table["Header"]) == ["instance", "process", "process_state", "az", "ips",
                                         "deployment", "state", "vm_cid", "vm_type",
                                         "disk_cids", "agent_id", "index", "bootstrap",
                                         "ignore"]
        inst, proc = table["Rows"]
        assert inst["instance"].startswith("cc_db/") and inst["ips"] == "10.0.1.11"
        assert inst["process_state"] == "running" and inst["bootstrap"] == "true"
        assert proc["instance"] == "" and proc["process"] == "postgres"


def test_shell_can_fail_the_next_task_with_its_message(tmp_path) -> None:
    with BoshLab(tmp_path / "d") as lab:
        lab.seed("cf", MANIFEST, CLOUD)
        state_env = {**ENV, "BOSH_SIM_STATE": str(tmp_path / "d" / "state.json")}
        subprocess.run([str(lab.cli), "sim-fail", "stop", "cc_db", "--message",
                        "Timed out pinging VM"], env=state_env, check=True)
        code, out = bosh(lab, "-d", "cf", "stop", "cc_db")
        lines = out["Lines"]
        task = next(ln for ln in lines if ln.startswith("Task ") and ln.endswith(" error"))
        tid = task.split()[1]
        assert code == 1
        assert any(ln.endswith("| Error: Timed out pinging VM") for ln in lines)
        assert f"Expected task '{tid}' to succeed but state is 'error'" in lines
        code, _ = bosh(lab, "-d", "cf", "stop", "cc_db")  # the failure was used up
        assert code == 0


def test_lab_director_checks_the_client_secret(tmp_path) -> None:
    with BoshLab(tmp_path / "d", client_secret="lab-secret-1") as lab:
        code, out = bosh(lab, "deployments", env={**ENV, "BOSH_CLIENT_SECRET": "wrong"})
        assert code == 1 and "non-successful status code '401'" in out["Lines"][1]
        code, _ = bosh(lab, "deployments", env={**ENV, "BOSH_CLIENT_SECRET": "lab-secret-1"})
        assert code == 0
        assert lab.profile()["cli"] == str(lab.cli)
