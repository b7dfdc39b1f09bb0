"""Reports of a resumed and of a rolled-back run: every span from stored timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.report import render
from runbook.report.data import run_report
from runbook.store.base import open_store
from tests.report.runs import resumed_run, rolled_back_run
from tests.window.kit import registry


def test_a_run_resumed_twice_is_timed_from_the_store(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    db, run_id, _ = resumed_run(tmp_path, monkeypatch)
    store = open_store(db)
    # the last process ran for two minutes; what it measured must not be the run's time
    for row in store.steps(run_id).values():
        row.info = dict(row.info, seconds=9999.0)
        store.save_step(row, event="tamper", from_state=row.state)
    r = run_report(store, run_id)
    assert (r["state"], r["kind"], r["rehearsal"]) == ("succeeded", "run", False)
    assert r["seconds"] == 102 * 60  # 20:00 .. 21:42
    assert r["active_seconds"] == (10 + 30 + 2) * 60  # three sittings
    assert r["resumes"] == 2
    actual = {s["key"]: s["seconds"] for s in r["steps"]}
    assert actual == {"prepare": 600.0, "stop": 300.0, "sync": 1500.0, "ok": 0.0,
                      "switch": 120.0}
    planned = {s["key"]: s["planned_seconds"] for s in r["steps"]}
    assert planned == {"prepare": 480.0, "stop": 300.0, "sync": 1200.0, "ok": None,
                       "switch": 120.0}
    ok = next(s for s in r["steps"] if s["key"] == "ok")
    assert ok["wait_seconds"] == 600.0 and ok["pauses"] == 1
    assert ok["first_started_at"] == "2026-11-28T21:30:00.000000+00:00"
    assert r["downtime"] == {"started_at": "2026-11-28T21:00:00.000000+00:00",
                             "finished_at": "2026-11-28T21:42:00.000000+00:00",
                             "seconds": 42 * 60.0}
    assert r["window"]["used_seconds"] == 42 * 60 and r["window"]["left_seconds"] == 78 * 60
    assert r["point_of_no_return"] == {"step": "ok", "at": "2026-11-28T21:40:00.000000+00:00"}
    assert r["critical_path"] == {
        "planned": {"steps": ["prepare", "stop", "sync", "ok", "switch"], "seconds": 2100.0},
        "actual": {"steps": ["prepare", "stop", "sync", "ok", "switch"], "seconds": 2520.0}}
    assert [(d["step"], d["verdict"], d["at"]) for d in r["decisions"]] == [
        ("stop", "go", "2026-11-28T21:00:00+00:00"),
        ("ok", "go", "2026-11-28T21:30:00+00:00"),
        ("ok", "go", "2026-11-28T21:40:00+00:00")]
    assert r["approvals"] == [{"by": "bob", "at": "2026-11-28T21:40:00+00:00", "via": "cli",
                               "step": "ok", "state": "succeeded"}]


def test_the_text_report_of_the_resumed_run(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    db, run_id, _ = resumed_run(tmp_path, monkeypatch)
    out = render.text(run_report(open_store(db), run_id)).splitlines()
    assert out[2] == "duration 1h42m (engine active 42m, resumed 2 times)"
    assert out[4] == ("window 1: 2026-11-28T22:00:00+01:00 .. 2026-11-29T00:00:00+01:00, "
                      "reserve 30m; used 42m, left +1h18m")
    assert "  sync     succeeded  20m      25m     +5m    0        0s      downtime" in out
    assert "  ok       succeeded  -        0s      -      0        10m     PONR" in out


def test_a_rolled_back_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, run_id = rolled_back_run(tmp_path, monkeypatch)
    r = run_report(open_store(db), run_id, registry())
    assert r["state"] == "rolled_back"
    assert r["rollback"] == {
        "started_at": "2026-11-28T21:16:00.000000+00:00",
        "finished_at": "2026-11-28T21:22:00.000000+00:00", "seconds": 360.0,
        "reverted": [
            {"key": "sync", "seconds": 240.0, "reverted_at": "2026-11-28T21:20:00.000000+00:00"},
            {"key": "stop", "seconds": 120.0,
             "reverted_at": "2026-11-28T21:22:00.000000+00:00"}],
        "not_undone": []}
    # the outage lasts until the old stack is back: the rollback's end
    assert r["downtime"]["seconds"] == 22 * 60.0
    assert r["window"]["left_seconds"] == 98 * 60.0
    check = next(s for s in r["steps"] if s["key"] == "check")
    assert (check["state"], check["error"]) == ("failed", "step 'check' failed on purpose")
    text = render.text(r)
    assert ("  rollback 2026-11-28T21:16:00.000000+00:00 .. 2026-11-28T21:22:00.000000+00:00 "
            "(6m)") in text.splitlines()
    md = render.markdown(r)
    assert "| sync | 4m | 2026-11-28T21:20:00.000000+00:00 |" in md.splitlines()


def test_a_rehearsal_simulates_its_window_and_says_so(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from runbook.clock import FakeClock
    from runbook.engine.runner import Options
    from tests.report.runs import MOVE
    from tests.window.kit import at, engine, follow_clock, runbook

    clock = FakeClock(at("2026-11-02T09:00:00+00:00"))  # weeks before the real window
    follow_clock(monkeypatch, clock)
    e = engine(runbook(MOVE.replace("  - id: ok\n    uses: approve\n    needs: [sync]\n"
                                    "    point_of_no_return: true\n    with: {prompt: "
                                    "\"Switch the gateway?\"}\n", "")
                       .replace("needs: [ok]", "needs: [sync]")), clock, tmp_path)
    run_id = e.start(Options(kind="rehearsal"))
    assert e.execute() == "succeeded"
    r = run_report(e.store, run_id)
    assert r["rehearsal"] is True
    # the window opened when the first downtime step was reached (09:10 UTC)
    assert r["window"]["start"] == "2026-11-02T10:10:00+01:00"
    assert r["window"]["simulated"] is True
    assert r["window"]["used_seconds"] == 32 * 60.0
    assert render.text(r).splitlines()[0] == f"run {run_id} (REHEARSAL) of move: succeeded"


def test_the_timeline_of_a_rolled_back_run_draws_the_reverts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from runbook.report.html import html

    db, run_id = rolled_back_run(tmp_path, monkeypatch)
    page = html(run_report(open_store(db), run_id, registry()))
    reverts = re.findall(r'<rect class="revert" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"',
                         page)
    bars = re.findall(r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', page)
    assert len(bars) == 3 and len(reverts) == 2
    # the axis spans the whole window (21:00..23:00 UTC, 860 px): stop ran 5m = 35.8 px
    # from the window's start; stop's revert ran 20m..22m in, sync's 16m..20m
    assert bars[0] == ("260.0", "35.8")
    assert reverts == [("403.3", "14.3"), ("374.7", "28.7")]
    assert 'id="window-0"' in page and 'id="ponr"' not in page


def test_a_run_that_is_a_sliver_of_its_window_gets_a_second_fitted_timeline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from runbook.report.gantt import gantt, needs_zoom

    db, run_id = rolled_back_run(tmp_path, monkeypatch)
    r = run_report(open_store(db), run_id, registry())
    assert not needs_zoom(r)  # 22 minutes of a 2 hour window read fine on one axis
    r["windows"][0]["end"] = "2026-11-29T20:00:00+01:00"  # a 22 hour window
    assert needs_zoom(r)
    fitted = gantt(r, zoom=True)
    assert fitted.startswith('<svg xmlns="http://www.w3.org/2000/svg" id="timeline-run"')
    # run-only axis 21:00..21:22: stop's bar starts at the left edge, 5/22 of 860 px wide
    first = re.search(r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', fitted)
    assert first is not None and first.groups() == ("260.0", "195.5")
    assert ">window 1 closes</text>" not in fitted  # the end is far off this axis


def test_markdown_keeps_the_go_no_go_arithmetic(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db, run_id, _ = resumed_run(tmp_path, monkeypatch)
    md = render.markdown(run_report(open_store(db), run_id))
    block = md.split("```\n")[1]
    assert block.splitlines()[0] == ("forecast before the first downtime step 'stop', at "
                                     "2026-11-28T22:00:00+01:00:")
    assert block.splitlines()[-1] == "verdict: go"
    assert md.count("```") == 6  # three decisions, each fenced
