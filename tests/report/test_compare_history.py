"""A real run compared with its rehearsal, and the history of both, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.cli.main import main
from runbook.clock import FakeClock
from runbook.engine.runner import Options
from runbook.report.compare import compare_text
from runbook.report.data import run_report
from runbook.store.base import open_store
from tests.window.kit import at, engine, follow_clock, runbook

RB = """
runbook: move
window:
  start: "2026-11-28T22:00:00+01:00"
  duration: 2h
steps:
  - id: prepare
    uses: wait
    with: {{duration: {prepare}}}
  - id: stop
    uses: wait
    phase: downtime
    needs: [prepare]
    with: {{duration: 5m}}
  - id: sync
    uses: wait
    phase: downtime
    needs: [stop]
    with: {{duration: {sync}}}
"""


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """A rehearsal on 20 November, then the real run in the window (sync 19m -> 25m)."""
    db = str(tmp_path / "state.db")
    store = open_store(db)
    clock = FakeClock(at("2026-11-20T10:00:00+00:00"))
    follow_clock(monkeypatch, clock)
    rehearsal = engine(runbook(RB.format(prepare="9m", sync="19m")), clock, tmp_path,
                       store=store)
    rehearsal_id = rehearsal.start(Options(kind="rehearsal"))
    assert rehearsal.execute() == "succeeded"
    clock = FakeClock(at("2026-11-28T20:50:00+00:00"))
    follow_clock(monkeypatch, clock)
    real = engine(runbook(RB.format(prepare="10m", sync="25m")), clock, tmp_path, store=store)
    real_id = real.start(Options())
    assert real.execute() == "succeeded"
    return db, real_id, rehearsal_id


def test_per_step_deltas_flag_what_got_over_25_percent_slower(
        runs: tuple[str, str, str]) -> None:
    db, real, rehearsal = runs
    store = open_store(db)
    text = compare_text(run_report(store, real), [run_report(store, rehearsal)])
    head = [f"{real} (run)", f"{rehearsal} (rehearsal)"]

    def row(*cells: str) -> str:
        widths = [11, len(head[0]), len(head[1])]
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]

    assert text.splitlines() == [
        f"compared with {rehearsal} (rehearsal) (regression: over 25% slower):",
        row("step", *head, "delta"),
        row("prepare", "10m", "9m", "+1m (+11%)"),
        row("stop", "5m", "5m", "+0s (+0%)"),
        row("sync", "25m", "19m", "+6m (+32%) REGRESSION"),
        row("(whole run)", "40m", "33m", "+7m"),
        row("(downtime)", "30m", "24m", "+6m"),
        "  1 regression: sync",
    ]


def test_the_json_report_carries_the_comparison(runs: tuple[str, str, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db, real, rehearsal = runs
    assert main(["--state", db, "report", real, "--format", "json", "--compare",
                 rehearsal]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["compare"]["regressions"] == ["sync"]
    sync = next(s for s in data["compare"]["steps"] if s["key"] == "sync")
    assert sync["baselines"][0]["seconds"] == 19 * 60.0
    assert sync["baselines"][0]["delta_seconds"] == 6 * 60.0


def test_markdown_with_compare_has_a_section(runs: tuple[str, str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    db, real, rehearsal = runs
    assert main(["--state", db, "report", real, "--format", "markdown", "--compare",
                 rehearsal]) == 0
    out = capsys.readouterr().out
    assert "\n## Compared runs\n" in out and "REGRESSION" in out


def test_history_lists_both_with_the_rehearsal_marked(runs: tuple[str, str, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db, real, rehearsal = runs
    assert main(["--state", db, "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "id", "kind", "started", "outcome", "duration",
                                "downtime"]
    assert lines[1].split() == [rehearsal, "REHEARSAL", "2026-11-20", "10:00:00",
                                "succeeded", "33m00s", "24m00s"]
    assert lines[2].split() == [real, "run", "2026-11-28", "20:50:00", "succeeded",
                                "40m00s", "30m00s"]
