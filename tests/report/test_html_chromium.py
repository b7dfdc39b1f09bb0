"""The HTML report opened in a real headless Chromium: it renders, shows every step and
the window, and its screenshot is not blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runbook.cli.main import main
from tests.conftest import missing
from tests.report.png import colour_count
from tests.report.runs import resumed_run

GREEN = (0x2E, 0x7D, 0x32)  # a succeeded step's bar
WINDOW = (0xE3, 0xF2, 0xFD)  # the window band behind the bars


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    missing("chromium (Debian package 'chromium')")
    raise AssertionError("unreachable")


def _browse(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def report_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db, run_id, _ = resumed_run(tmp_path, monkeypatch)
    out = tmp_path / "report.html"
    assert main(["--state", db, "report", run_id, "--format", "html", "-o", str(out)]) == 0
    return out


def test_the_report_is_one_self_contained_file(report_file: Path) -> None:
    page = report_file.read_text()
    assert "<script" not in page
    # nothing to fetch: no links to other files, no remote addresses (the SVG namespace
    # is a name, not a download)
    assert not re.search(r"\b(src|href)=|url\(|@import", page)
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]


def test_chromium_renders_every_step_the_window_and_the_point_of_no_return(
        report_file: Path, tmp_path: Path) -> None:
    binary = _chromium()
    dom = _browse(binary, tmp_path / "profile-dom", "--dump-dom", report_file.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    labels = re.findall(r'<text class="step-label"[^>]*>([^<]+)</text>', dom.stdout)
    assert labels == ["prepare", "stop", "sync", "ok", "switch"]
    assert len(re.findall(r'<rect class="bar"', dom.stdout)) == 5
    assert 'id="window-0"' in dom.stdout
    assert ">window 1 opens</text>" in dom.stdout and ">window 1 closes</text>" in dom.stdout
    assert 'id="ponr"' in dom.stdout and ">point of no return</text>" in dom.stdout
    for key in ("prepare", "stop", "sync", "ok", "switch"):
        assert f'id="step-{key}"' in dom.stdout  # and in the table

    shot = tmp_path / "shot.png"
    run = _browse(binary, tmp_path / "profile-shot", f"--screenshot={shot}",
                  "--window-size=1200,800", report_file.as_uri())
    assert shot.exists(), run.stderr[-2000:]
    busy, colours = colour_count(shot.read_bytes())
    assert busy > 1200 * 800 // 50  # more than 2% of the page is drawn on
    assert GREEN in colours and WINDOW in colours
