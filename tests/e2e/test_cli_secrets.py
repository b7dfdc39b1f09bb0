"""No secret in the state database, logs or reports; plan has no side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SECRET = "s3cr3t-Pa55w0rd-value"


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if k != "RUNBOOK_KILL_AT"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "runbook.cli.main", *args], cwd=cwd,
                          env=full, capture_output=True, text=True, timeout=120)


def test_secret_by_reference_never_lands_in_state_logs_or_reports(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "-file\n")
    (tmp_path / "rb.yml").write_text(f"""
runbook: leak
targets:
  db: {{password: "${{env:DB_PW}}", other: "${{file:{secret_file}}}"}}
steps:
  - id: echo
    uses: shell
    with:
      command: [sh, -c, "echo pw=$PW; echo other=$OTHER >&2; echo $PW > {tmp_path}/copy"]
      env: {{PW: "${{env:DB_PW}}", OTHER: "${{file:{secret_file}}}"}}
  - id: fail
    uses: shell
    needs: [echo]
    with: {{command: [sh, -c, "echo failing with $PW >&2; exit 3"], env: {{PW: "${{env:DB_PW}}"}}}}
""")
    result = cli(tmp_path, "run", "rb.yml", "--run-id", "r1", env={"DB_PW": SECRET})
    assert result.returncode == 1
    assert (tmp_path / "copy").read_text().strip() == SECRET  # the step did get the value
    reports = [cli(tmp_path, "report", "r1", "--format", f).stdout
               for f in ("text", "json", "markdown")]
    status = cli(tmp_path, "status", "r1", "--json").stdout
    texts = [result.stdout, result.stderr, status, *reports]
    files = [p for p in (tmp_path / ".runbook").rglob("*") if p.is_file()]
    assert any(p.name.startswith("state.db") for p in files)
    assert any(p.suffix == ".log" for p in files)
    for blob in [p.read_bytes() for p in files] + [t.encode() for t in texts]:
        assert SECRET.encode() not in blob
    assert "failing with ***" in result.stderr  # the error was masked, not dropped
    assert any("pw=***" in p.read_text() for p in files if p.suffix == ".log")


def test_plan_of_a_runbook_that_creates_files_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "made"
    (tmp_path / "rb.yml").write_text(f"""
runbook: makes-files
targets: {{x: {{token: "${{env:NOT_SET_ANYWHERE}}"}}}}
steps:
  - id: mk
    uses: shell
    with: {{command: [mkdir, -p, "{target}/dir"], creates: "{target}/dir"}}
  - id: touch
    uses: shell
    needs: [mk]
    with: {{command: [touch, "{target}/dir/file"]}}
""")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli(tmp_path, "plan", "rb.yml")
    assert result.returncode == 0, result.stderr
    assert f"~ run mkdir -p {target}/dir" in result.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no file, no .runbook/


def test_validate_reports_and_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "ok.yml").write_text("runbook: ok\nsteps:\n  - id: a\n    uses: wait\n"
                                     "    with: {duration: 0s}\n")
    ok = cli(tmp_path, "validate", "ok.yml")
    assert ok.returncode == 0 and "ok.yml: ok (1 steps)" in ok.stdout
    missing = cli(tmp_path, "validate", "nope.yml")
    assert missing.returncode == 2
    assert "nope.yml:1:1: cannot read the file: No such file or directory" in missing.stderr
    unknown = cli(tmp_path, "resume", "no-such-run")
    assert unknown.returncode == 2
    assert "no run 'no-such-run'" in unknown.stderr


def test_report_shows_a_steps_summary_output(tmp_path: Path) -> None:
    from runbook.report.data import run_report
    from runbook.report.render import text
    from runbook.store.base import RunRow, StepRow, open_store, utcnow

    store = open_store(str(tmp_path / "state.db"))
    store.create_run(RunRow(run_id="r", runbook="x", path=str(tmp_path / "x.yml"), digest="d",
                            text="runbook: x\nsteps:\n  - id: sync\n    uses: wait\n"
                                 "    with: {duration: 0s}\n",
                            kind="run", state="succeeded", created_at=utcnow()))
    store.save_step(StepRow(run_id="r", key="sync", step_id="sync", state="succeeded",
                            started_at=utcnow(), finished_at=utcnow(),
                            outputs={"summary": "3 disks, 2.1 MB sent, 20 files"}),
                    event="succeed", from_state="running")
    report = run_report(store, "r")
    assert report["steps"][0]["summary"] == "3 disks, 2.1 MB sent, 20 files"
    assert "sync: 3 disks, 2.1 MB sent, 20 files" in text(report)


def test_plan_observe_reads_facts_and_still_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "already").write_text("")
    (tmp_path / "rb.yml").write_text("""
runbook: observe
targets: {t: {token: "${env:OBS_TOKEN}"}}
steps:
  - id: done-before
    uses: shell
    with: {command: [touch, already], creates: already}
  - id: still-to-do
    uses: shell
    with: {command: [touch, fresh], creates: fresh}
""")
    offline = cli(tmp_path, "plan", "rb.yml")
    assert "~ run touch already" in offline.stdout  # without facts it must assume work
    refused = cli(tmp_path, "plan", "rb.yml", "--observe")
    assert refused.returncode == 2
    assert "rb.yml:3:22: environment variable OBS_TOKEN is not set" in refused.stderr
    before = sorted(p.name for p in tmp_path.iterdir())
    observed = cli(tmp_path, "plan", "rb.yml", "--observe", env={"OBS_TOKEN": "t0ken-value"})
    assert observed.returncode == 0, observed.stderr
    assert "1. done-before (shell) read-only" in observed.stdout
    assert "= nothing to do: already already exists" in observed.stdout
    assert "~ run touch fresh" in observed.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_targets_file_is_checked_like_a_runbook(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("runbook: t\nsteps:\n  - id: a\n    uses: wait\n"
                                     "    with: {duration: 0s}\n")
    (tmp_path / "staging.yml").write_text("targets:\n  src: {a: 1}\n  src: {a: 2}\n")
    dup = cli(tmp_path, "plan", "rb.yml", "--targets", "staging.yml")
    assert dup.returncode == 2
    assert "staging.yml:3:3: duplicate key 'src' (the first one is on line 2)" in dup.stderr
    (tmp_path / "staging.yml").write_text("- not a mapping\n")
    bad = cli(tmp_path, "plan", "rb.yml", "--targets", "staging.yml")
    assert bad.returncode == 2
    assert "staging.yml:1:1: a targets file must be a mapping of target names" in bad.stderr
