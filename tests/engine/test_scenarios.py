"""Engine behaviour: order, parallelism, fan-out, conditions, retries, timeouts, rollback."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runbook.clock import FakeClock, RealClock
from runbook.engine.runner import RunFailed, rollback
from runbook.errors import ApprovalPending, RevertFailed
from tests.engine.stepkit import make_engine, read_journal, start


def mark(step_id: str, j: Path, *, needs: list[str] | None = None, extra: str = "",
         **with_: object) -> str:
    args = ", ".join([f"journal: '{j}'", f"name: {step_id}"] +
                     [f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                      for k, v in with_.items()])
    lines = [f"  - id: {step_id}", "    uses: test.mark", f"    with: {{{args}}}"]
    if needs:
        lines.append(f"    needs: [{', '.join(needs)}]")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def book(*steps: str, header: str = "") -> str:
    return "runbook: t\n" + header + "steps:\n" + "".join(steps)


def test_dependencies_run_before_dependents(tmp_path: Path) -> None:
    j = tmp_path / "j"
    e = make_engine(book(mark("c", j, needs=["b"]), mark("b", j, needs=["a"]), mark("a", j)),
                    tmp_path)
    start(e)
    assert e.execute() == "succeeded"
    assert [x[1] for x in read_journal(j)] == ["a", "b", "c"]


def test_outputs_flow_into_templates(tmp_path: Path) -> None:
    j = tmp_path / "j"
    e = make_engine(book(mark("a", j), mark("b", j, needs=["a"]).replace(
        "name: b", "name: \"from-{{ steps.a.outputs.name }}\"")), tmp_path)
    start(e)
    e.execute()
    assert [x[1] for x in read_journal(j)] == ["a", "from-a"]


def test_for_each_fans_out_and_when_skips(tmp_path: Path) -> None:
    j = tmp_path / "j"
    text = book(
        mark("fan", j, extra="    for_each: [x, y, z]\n    max_parallel: 2").replace(
            "name: fan", "name: \"fan-{{ item }}\""),
        mark("never", j, extra="    when: \"{{ vars.flag }}\""),
        header="vars: {flag: false}\n")
    e = make_engine(text, tmp_path)
    run_id = start(e)
    assert e.execute() == "succeeded"
    assert sorted(x[1] for x in read_journal(j)) == ["fan-x", "fan-y", "fan-z"]
    rows = e.store.steps(run_id)
    assert rows["never"].state == "skipped"
    assert rows["fan"].outputs == {"items": [{"name": "fan-x", "attempt": 1},
                                             {"name": "fan-y", "attempt": 1},
                                             {"name": "fan-z", "attempt": 1}]}


def test_independent_branches_run_in_parallel(tmp_path: Path) -> None:
    # 'hold' blocks until 'release' has run: only possible when both run at once.
    flag = tmp_path / "released"
    text = book(
        "  - id: hold\n    uses: test.wait_file\n    with: {event: '" + str(flag) + "'}\n",
        "  - id: release\n    uses: shell\n    with: {command: [touch, '" + str(flag) + "']}\n")
    e = make_engine(text, tmp_path, clock=RealClock())
    start(e)
    assert e.execute() == "succeeded"


def test_retries_honour_backoff_on_fake_clock(tmp_path: Path) -> None:
    j = tmp_path / "j"
    clock = FakeClock()
    e = make_engine(book(mark("flaky", j, fail_times=3,
                              extra="    retries: {attempts: 4, delay: 10s, backoff: 2}")),
                    tmp_path, clock=clock)
    run_id = start(e)
    assert e.execute() == "succeeded"
    assert clock.sleeps == [10.0, 20.0, 40.0]
    row = e.store.steps(run_id)["flaky"]
    assert row.outputs["attempt"] == 4
    assert [ev.detail["attempt"] for ev in e.store.events(run_id) if ev.kind == "retry"] == \
        [1, 2, 3]


def test_retries_exhausted_fail_the_step(tmp_path: Path) -> None:
    j = tmp_path / "j"
    clock = FakeClock()
    e = make_engine(book(mark("flaky", j, fail_times=5,
                              extra="    retries: {attempts: 3, delay: 1s, backoff: 3, "
                                    "max_delay: 2s}"),
                         header="on_failure: stop\n"), tmp_path, clock=clock)
    start(e)
    with pytest.raises(RunFailed, match="flaky failed on purpose \\(try 3\\)"):
        e.execute()
    assert clock.sleeps == [1.0, 2.0]


def test_timeout_kills_a_hung_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    text = book("  - id: hung\n    uses: shell\n    timeout: 0.5s\n"
                f"    with: {{command: [sh, -c, 'echo $$ > {pidfile}; exec sleep 60']}}\n",
                header="on_failure: stop\n")
    e = make_engine(text, tmp_path, clock=RealClock())
    run_id = start(e)
    with pytest.raises(RunFailed, match="ran past its timeout"):
        e.execute()
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert e.store.steps(run_id)["hung"].error["type"] == "StepTimedOut"


def test_timeout_abandons_a_step_that_ignores_cancellation(tmp_path: Path) -> None:
    j = tmp_path / "j"
    e = make_engine(book(mark("stuck", j, hang=True, ignore_cancel=True,
                              extra="    timeout: 0.2s"), header="on_failure: stop\n"),
                    tmp_path, clock=RealClock())
    run_id = start(e)
    with pytest.raises(RunFailed, match="did not stop within 0s; it was abandoned"):
        e.execute()
    assert e.store.steps(run_id)["stuck"].state == "failed"


def test_rollback_reverts_newest_first_and_lists_what_it_cannot_undo(tmp_path: Path) -> None:
    j = tmp_path / "j"
    text = book(mark("a", j), mark("b", j, needs=["a"]),
                mark("keep", j, needs=["b"], extra="    rollback: none"),
                mark("boom", j, needs=["keep"], fail_times=9))
    e = make_engine(text, tmp_path)
    run_id = start(e)
    with pytest.raises(RunFailed) as caught:
        e.execute()
    assert caught.value.rolled_back is True
    entries = read_journal(j)
    assert entries == [["apply", "a"], ["apply", "b"], ["apply", "keep"],
                       ["revert", "b"], ["revert", "a"]]
    run = e.store.get_run(run_id)
    assert run.state == "rolled_back"
    not_undone = [ev for ev in e.store.events(run_id) if ev.kind == "not_undone"]
    assert [(ev.key, ev.detail["why"]) for ev in not_undone] == [("keep", "rollback: none")]


def test_failure_in_one_branch_stops_the_sibling_and_reverts_both(tmp_path: Path) -> None:
    j = tmp_path / "j"
    text = book(mark("root", j), mark("slow", j, needs=["root"], hang=True),
                mark("bad", j, needs=["root"], fail_times=1))
    e = make_engine(text, tmp_path, clock=RealClock())
    run_id = start(e)
    with pytest.raises(RunFailed, match="bad failed on purpose"):
        e.execute()
    rows = e.store.steps(run_id)
    assert rows["slow"].state == "reverted"  # cancelled mid-work, its checkpoint undone
    assert rows["root"].state == "reverted"
    assert rows["bad"].state == "failed"  # failed before any work: nothing to undo
    reverts = [x[1] for x in read_journal(j) if x[0] == "revert"]
    assert reverts == ["slow", "root"]


def test_failed_revert_stops_and_says_what_to_check(tmp_path: Path) -> None:
    j = tmp_path / "j"
    text = book(mark("a", j), mark("b", j, needs=["a"], revert_fails=True),
                mark("c", j, needs=["b"], fail_times=1))
    e = make_engine(text, tmp_path)
    run_id = start(e)
    with pytest.raises(RevertFailed) as caught:
        e.execute()
    assert str(caught.value).startswith("revert of step 'b' (test.mark) failed: cannot undo b. "
                                        "A human must check: undo test.mark.")
    assert e.store.get_run(run_id).state == "rollback_failed"
    assert [x for x in read_journal(j) if x[0] == "revert"] == []  # 'a' was not touched


def test_manual_rollback_to_a_step_keeps_that_step(tmp_path: Path) -> None:
    j = tmp_path / "j"
    e = make_engine(book(mark("a", j), mark("b", j, needs=["a"]), mark("c", j, needs=["b"])),
                    tmp_path)
    run_id = start(e)
    assert e.execute() == "succeeded"
    outcome = rollback(e, to="a")
    assert outcome.reverted == ["c", "b"]
    assert e.store.steps(run_id)["a"].state == "succeeded"
    # rolling back again does not undo twice what was already undone
    rollback(e, to="a")
    assert [x[1] for x in read_journal(j) if x[0] == "revert"] == ["c", "b"]


def test_approval_pauses_the_run_until_given(tmp_path: Path) -> None:
    j = tmp_path / "j"
    text = book("  - id: gate\n    uses: approve\n    with: {prompt: 'switch?'}\n",
                mark("after", j, needs=["gate"]))
    e = make_engine(text, tmp_path)
    run_id = start(e)
    with pytest.raises(ApprovalPending, match=f"approve with: runbook approve {run_id} gate"):
        e.execute()
    assert read_journal(j) == []
    assert e.store.get_run(run_id).state == "paused"


def test_interrupt_lets_running_steps_finish_then_pauses(tmp_path: Path) -> None:
    from runbook.errors import Interrupted

    j = tmp_path / "j"
    flag = tmp_path / "go"
    text = book("  - id: hold\n    uses: test.wait_file\n    with: {event: '" + str(flag) + "'}\n",
                mark("next", j, needs=["hold"]))
    e = make_engine(text, tmp_path, clock=RealClock())
    run_id = start(e)

    def operator() -> None:
        e.stop_requests = 1
        flag.write_text("")

    threading.Timer(0.3, operator).start()
    with pytest.raises(Interrupted, match=f"runbook resume {run_id}"):
        e.execute()
    rows = e.store.steps(run_id)
    assert rows["hold"].state == "succeeded"
    assert "next" not in rows


def test_a_failure_after_the_point_of_no_return_does_not_undo_it(tmp_path: Path) -> None:
    j = tmp_path / "j"
    text = book(mark("prep", j), mark("switch", j, needs=["prep"],
                                      extra="    point_of_no_return: true"),
                mark("tidy", j, needs=["switch"]),
                mark("archive", j, needs=["tidy"], fail_times=9))
    e = make_engine(text, tmp_path)
    run_id = start(e)
    with pytest.raises(RunFailed) as caught:
        e.execute()
    assert caught.value.kept == "switch"
    assert [x[1] for x in read_journal(j) if x[0] == "revert"] == ["tidy"]
    rows = e.store.steps(run_id)
    assert (rows["switch"].state, rows["prep"].state) == ("succeeded", "succeeded")
    # the operator decides to go back all the way
    outcome = rollback(e, through_point_of_no_return=True)
    assert outcome.reverted == ["switch", "prep"]
    assert [x[1] for x in read_journal(j) if x[0] == "revert"] == ["tidy", "switch", "prep"]
