"""Every broken runbook in the corpus is rejected with exactly the expected messages."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from runbook.cli.main import main
from runbook.errors import ValidationFailed
from runbook.loader.validate import load_runbook

CORPUS = Path(__file__).parent.parent / "corpus" / "broken"


def expected() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for line in (CORPUS / "expected.txt").read_text().splitlines():
        name = line.split(":", 1)[0].rsplit("/", 1)[-1]
        out[name].append(line.split(":", 1)[1])
    return out


EXPECTED = expected()
FILES = sorted(p.name for p in CORPUS.glob("*.yml"))


def test_corpus_is_large_and_fully_specified() -> None:
    assert len(FILES) >= 25
    assert set(FILES) == set(EXPECTED)


@pytest.mark.parametrize("name", FILES)
def test_broken_runbook_reports_exact_problems(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS.parent.parent.parent)
    path = f"tests/corpus/broken/{name}"
    with pytest.raises(ValidationFailed) as caught:
        load_runbook(path)
    got = [str(p).split(":", 1)[1] for p in caught.value.problems]
    assert got == EXPECTED[name]


def test_validate_cli_exits_2_and_prints_every_problem(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(CORPUS.parent.parent.parent)
    code = main(["validate", "tests/corpus/broken/31_many_problems.yml"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("tests/corpus/broken/31_many_problems.yml:") == 6
    assert "6 problems found; nothing was executed" in err
