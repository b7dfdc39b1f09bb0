"""disks.sync and gateway.switch inside a runbook, through the CLI: validation of `with:`,
a run whose last step fails, and the automatic rollback putting the old routers back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from runbook.lab.gateway import NginxGateway, StandInRouter
from runbook.lab.servers import ServerUnavailable
from tests.conftest import missing, require_binary


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runbook.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _answer(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode()).strip()


def test_validate_points_at_bad_parameters(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("""\
runbook: edges
steps:
  - id: sync
    uses: disks.sync
    with:
      mode: sometimes
      disks: [{name: a, source: /a, destination: /b}]
  - id: switch
    uses: gateway.switch
    with: {backend: nginx, routers: 10.1.0.20:80}
""")
    result = cli(tmp_path, "validate", "rb.yml")
    assert result.returncode == 2
    assert "rb.yml:6:13: step 'sync' (disks.sync): 'mode' must be 'initial' or 'final', " \
           "got 'sometimes'" in result.stderr + result.stdout
    assert "rb.yml:10:37: step 'switch' (gateway.switch): 'routers' must be a list of " \
           "strings, got '10.1.0.20:80'" in result.stderr + result.stdout


def test_failed_run_rolls_the_gateway_back(tmp_path: Path) -> None:
    require_binary("rsync")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data").write_text("payload")
    with StandInRouter("old") as old, StandInRouter("new") as new:
        try:
            gateway = NginxGateway([old.address])
        except ServerUnavailable as exc:
            missing(str(exc))
        with gateway:
            (tmp_path / "rb.yml").write_text(f"""\
runbook: edges
targets:
  edge: {{gateway: {json.dumps(gateway.target())}}}
steps:
  - id: sync
    uses: disks.sync
    with:
      mode: final
      source_stopped: true
      disks: [{{name: store, source: {tmp_path}/src, destination: {tmp_path}/dst}}]
  - id: switch
    uses: gateway.switch
    needs: [sync]
    with: {{target: edge, routers: ["{new.address}"], probe_contains: "router=new"}}
  - id: smoke
    uses: shell
    needs: [switch]
    with:
      command: [sh, -c, "echo sent={{{{ steps.sync.outputs.bytes_sent }}}} \
via={{{{ steps.switch.outputs.routers[0] }}}} > {tmp_path}/seen; exit 1"]
""")
            result = cli(tmp_path, "run", "rb.yml", "--run-id", "r1")
            assert result.returncode == 1, result.stderr
            assert "rollback finished: 2 reverted" in result.stdout + result.stderr
            seen = (tmp_path / "seen").read_text()
            assert seen.startswith("sent=") and f"via={new.address}" in seen
            assert (tmp_path / "dst" / "data").read_text() == "payload"
            # The revert reloads nginx gracefully: for a moment old workers may still take
            # a connection with the previous upstream. Wait for five old answers in a row.
            in_a_row = 0
            for _ in range(500):
                in_a_row = in_a_row + 1 if _answer(gateway.url) == "router=old" else 0
                if in_a_row == 5:
                    break
                time.sleep(0.02)
            assert in_a_row == 5
            assert gateway.upstream_file.read_text().count(old.address) == 1
