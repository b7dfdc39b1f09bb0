"""The verbs behind ``runbook``. Each returns an exit code; errors propagate to main()."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbook.duration import format_duration
from runbook.errors import InputError, Problem, UnknownRun, ValidationFailed

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STOPPED = 0, 1, 2, 3


def _store(args: argparse.Namespace) -> Any:
    from runbook.store.base import open_store

    return open_store(args.state)


def _run_root(args: argparse.Namespace) -> Path:
    state = args.state
    if state and not state.startswith(("postgresql://", "postgres://", "memory://")):
        path = state[len("sqlite:///"):] if state.startswith("sqlite:///") else state
        return Path(path).resolve().parent / "runs"
    return Path(".runbook").resolve() / "runs"


def _targets_file(path: str | None) -> dict[str, Any] | None:
    """A rehearsal environment's targets (``--targets``), read like a runbook is."""
    if path is None:
        return None
    from runbook.loader.yamlpos import load

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValidationFailed(
            [Problem(path, 1, 1, f"cannot read the file: {exc.strerror}")]) from None
    data, _, problems = load(text, path)
    if problems:
        raise ValidationFailed(problems)
    if isinstance(data, dict) and "targets" in data:
        data = data["targets"]
    if not isinstance(data, dict):
        raise ValidationFailed([Problem(path, 1, 1, "a targets file must be a mapping of "
                                                    "target names to settings")])
    return data


def _load(path: str, targets: dict[str, Any] | None = None) -> Any:
    from runbook.loader.validate import load_runbook

    return load_runbook(path, targets_override=targets)


def cmd_validate(args: argparse.Namespace) -> int:
    problems: list[Problem] = []
    for f in args.files:
        try:
            runbook = _load(f)
            print(f"{f}: ok ({len(runbook.steps)} steps)")
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found; "
              "nothing was executed", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from runbook.engine.plan import FactReader, plan_runbook, render_plan

    runbook = _load(args.file, _targets_file(args.targets))
    reader = None
    if args.observe:
        reader = FactReader(runbook)  # exit 2, naming each, when a secret is missing
    try:
        planned = plan_runbook(runbook, reader=reader)
    finally:
        if reader is not None:
            reader.close()
    if args.format == "json":
        print(json.dumps(planned, indent=2))
    else:
        print(render_plan(planned), end="")
    return EXIT_OK


def _engine(args: argparse.Namespace, runbook: Any, store: Any) -> Any:
    from runbook.cli.main import install_interrupt
    from runbook.cli.output import LiveView, printer_for
    from runbook.engine.gate import Gate, check_deadlines
    from runbook.engine.runner import Engine

    problems = check_deadlines(runbook)
    if problems:  # before anything runs, like every other input problem
        raise ValidationFailed(problems)
    ask: Callable[[str], bool] | None = (
        _ask if sys.stdin.isatty() and sys.stdout.isatty() else None)
    # rollback and approve share this helper but have no --force/--wait
    gate = Gate(force=getattr(args, "force", None), wait=bool(getattr(args, "wait", False)))
    printer = printer_for(runbook)
    if ask is not None and isinstance(printer, LiveView):
        ask = printer.wrap_ask(ask)
    engine = Engine(store, runbook, run_root=_run_root(args), emit=printer, ask=ask,
                    gate=gate)
    install_interrupt(engine)
    return engine


def _ask(prompt: str) -> bool:
    answer = input(f"? {prompt} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _execute(args: argparse.Namespace, kind: str) -> int:
    targets = _targets_file(args.targets)
    if kind == "rehearsal" and targets is None:
        from runbook.cli.lab import rehearsal_lab

        # An invalid runbook fails (exit 2) before a lab is started; one that names no
        # targets needs no lab at all.
        if _load(args.file).targets:
            # The lab lives exactly as long as the rehearsal (or is the one `lab up` started).
            with rehearsal_lab() as lab_targets:
                return _execute_with(args, kind, lab_targets)
    return _execute_with(args, kind, targets)


def _execute_with(args: argparse.Namespace, kind: str, targets: dict[str, Any] | None) -> int:
    from runbook.engine.runner import Options

    runbook = _load(args.file, targets)
    store = _store(args)
    engine = _engine(args, runbook, store)
    run_id = engine.start(Options(kind=kind, force_reason=args.force), run_id=args.run_id)
    print(f"run id: {run_id}", flush=True)
    code = _drive(engine, lambda: engine.execute())
    if kind == "rehearsal":
        from runbook.cli.lab import rehearsal_epilogue

        rehearsal_epilogue(store, run_id, _run_root(args))
    return code


def _drive(engine: Any, go: Any) -> int:
    from runbook.engine.runner import RunFailed

    try:
        state = go()
    except RunFailed as exc:
        print(f"✘ run {exc.run_id} failed at step '{exc.step}': {exc}", file=sys.stderr)
        if exc.rolled_back and exc.kept:
            print(f"  rolled back to the point of no return '{exc.kept}', which stays; "
                  f"details: runbook report {exc.run_id}", file=sys.stderr)
        elif exc.rolled_back:
            print(f"  the run was rolled back; details: runbook report {exc.run_id}",
                  file=sys.stderr)
        else:
            print(f"  fix the cause, then: runbook resume {exc.run_id}   "
                  f"or undo it: runbook rollback {exc.run_id}", file=sys.stderr)
        return EXIT_FAILED
    if state in ("succeeded", "rolled_back"):
        print(f"run {engine.run_id}: {state}; report: runbook report {engine.run_id}")
    return EXIT_OK if state == "succeeded" else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    return _execute(args, "run")


def cmd_rehearse(args: argparse.Namespace) -> int:
    return _execute(args, "rehearsal")


def _attach(args: argparse.Namespace, accept_changes: bool = False) -> Any:
    from runbook.engine.resume import load_for_resume
    from runbook.engine.runner import attach

    store = _store(args)
    run = store.get_run(args.run_id)
    current = None
    if os.path.exists(run.path):
        current = _load(run.path)
    runbook = load_for_resume(run, current, accept_changes)
    if run.meta.get("targets") is not None and run.meta["targets"] != runbook.targets:
        runbook = _replace_targets(runbook, run.meta["targets"])
    engine = _engine(args, runbook, store)
    attach(engine, run)
    return engine


def _replace_targets(runbook: Any, targets: dict[str, Any]) -> Any:
    from dataclasses import replace

    return replace(runbook, targets=targets)


def cmd_resume(args: argparse.Namespace) -> int:
    from runbook.engine.runner import Options, resume

    if args.rerun_interrupted and args.skip_interrupted:
        raise InputError("choose one of --rerun-interrupted and --skip-interrupted")
    engine = _attach(args, args.accept_changes)
    options = Options(rerun_interrupted=args.rerun_interrupted,
                      skip_interrupted=args.skip_interrupted,
                      accept_changes=args.accept_changes, force_reason=args.force)
    print(f"run id: {engine.run_id}", flush=True)
    return _drive(engine, lambda: resume(engine, options))


def cmd_rollback(args: argparse.Namespace) -> int:
    from runbook.engine.runner import rollback

    engine = _attach(args, accept_changes=True)
    if args.to is not None and args.to not in engine.runbook.by_id:
        raise InputError(f"--to {args.to}: no such step in run {engine.run_id}")
    outcome = rollback(engine, args.to, args.through_point_of_no_return)
    for key, why in outcome.not_undone:
        print(f"not undone: {key} ({why})")
    if outcome.stopped_at:
        print(f"kept: '{outcome.stopped_at}' (the point of no return) and what ran before it")
    print(f"run {engine.run_id}: rolled back ({len(outcome.reverted)} steps reverted)")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from runbook.report.data import run_report

    store = _store(args)
    run_id = args.run_id
    if run_id is None:
        runs = store.list_runs()
        if not runs:
            raise UnknownRun(f"no runs in {store.url} yet")
        run_id = runs[-1].run_id
    report = run_report(store, run_id)
    locks = {k: v for k, v in store.locks().items() if v.get("run") == run_id}
    if args.json:
        print(json.dumps({"run_id": run_id, "state": report["state"], "kind": report["kind"],
                          "runbook": report["runbook"], "locks": locks,
                          "steps": [{k: s[k] for k in ("key", "state", "started_at",
                                                       "finished_at", "seconds", "error")}
                                    for s in report["steps"]]}, indent=2))
        return EXIT_OK
    print(f"run {run_id} ({report['kind']}) of {report['runbook']}: {report['state']}")
    for s in report["steps"]:
        if s["parent"]:
            continue
        took = format_duration(s["seconds"]) if s["seconds"] is not None else ""
        print(f"  {s['key']:<32} {s['state']:<14} {took}")
        if s["error"]:
            print(f"      {s['error']}")
    for name, holder in locks.items():
        print(f"  lock {name}: {holder}")
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    from runbook.store.base import StepRow, utcnow

    store = _store(args)
    run = store.get_run(args.run_id)
    from runbook.loader.validate import parse_runbook

    runbook = parse_runbook(run.text, run.path)
    spec = runbook.by_id.get(args.step)
    if spec is None or spec.uses != "approve":
        raise InputError(f"run {args.run_id} has no approve step '{args.step}'")
    rows = store.steps(args.run_id)
    row = rows.get(args.step) or StepRow(run_id=run.run_id, key=args.step, step_id=args.step,
                                         state="pending")
    if row.state != "pending":
        raise InputError(f"step '{args.step}' is {row.state}; only a waiting approval can be "
                         "given")
    who = args.by or getpass.getuser()
    row.info = dict(row.info, approval={"by": who, "at": utcnow(), "via": "cli"})
    store.save_step(row, event="approved", from_state=row.state, detail={"by": who})
    print(f"approved '{args.step}' as {who}; continue with: runbook resume {args.run_id}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from runbook.report import render
    from runbook.report.data import run_report

    store = _store(args)
    report = run_report(store, args.run_id)
    others = [run_report(store, r) for r in args.compare]
    if args.format == "json":
        if others:
            from runbook.report.compare import compare

            report = dict(report, compare=compare(report, others))
        text = render.as_json(report)
    elif args.format == "markdown":
        text = render.markdown(report)
    elif args.format == "html":
        from runbook.report.html import html

        text = html(report, others)
    else:
        text = render.text(report)
    if others and args.format in ("text", "markdown"):
        from runbook.report.compare import compare_text

        body = compare_text(report, others)
        text += "\n" + (f"## Compared runs\n\n```\n{body}```\n" if args.format == "markdown"
                        else body)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from runbook.report.data import run_report

    store = _store(args)
    runs = store.list_runs()
    if not runs:
        print("no runs yet")
        return EXIT_OK
    print(f"{'run id':<44} {'kind':<10} {'started':<20} {'outcome':<16} {'duration':>9} "
          f"{'downtime':>9}")
    for run in runs:
        r = run_report(store, run.run_id)
        dur = format_duration(r["seconds"]) if r["seconds"] is not None else "-"
        down = r["downtime"]["seconds"]
        started = (r["started_at"] or r["created_at"])[:19].replace("T", " ")
        # rehearsals in capitals: the one table where mistaking one for a real run hurts
        kind = "REHEARSAL" if run.kind == "rehearsal" else "run"
        print(f"{run.run_id:<44} {kind:<10} {started:<20} {run.state:<16} {dur:>9} "
              f"{format_duration(down) if down is not None else '-':>9}")
    return EXIT_OK


def cmd_unlock(args: argparse.Namespace) -> int:
    store = _store(args)
    holder = store.lock_holder(args.name)
    if holder is None:
        raise InputError(f"no lock named '{args.name}'")
    store.release_lock(args.name)
    print(f"broke lock {args.name} (was held by {holder})")
    return EXIT_OK


def cmd_steps(args: argparse.Namespace) -> int:
    from runbook.params import describe
    from runbook.registry import default_registry
    from runbook.step import Step

    reg = default_registry()
    for name in reg.names():
        try:
            cls = reg.load(name)
        except Exception as exc:
            print(f"{name}: unavailable ({exc})")
            continue
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        undo = "can undo" if cls.revert is not Step.revert else "no undo"
        if args.markdown:
            print(f"### `{name}`\n\n{doc}\n")
            print("| parameter | type | default | meaning |\n|---|---|---|---|")
            for pname, ptype, default, pdoc in describe(cls.Params):
                print(f"| `{pname}` | {ptype} | `{default}` | {pdoc} |".replace("`required`",
                                                                                "required"))
            outputs = ", ".join(f"`{o}`" for o in cls.outputs or ())
            print(f"\nOutputs: {outputs or 'none declared'}.\n")
            continue
        print(f"{name}: {doc} [{undo}]")
        for pname, ptype, default, pdoc in describe(cls.Params):
            print(f"    {pname:<22} {ptype:<34} {default:<12} {pdoc}")
    return EXIT_OK


def cmd_lab(args: argparse.Namespace) -> int:
    from runbook.cli.lab import cmd_lab as lab

    return lab(args)


def cmd_manifest(args: argparse.Namespace) -> int:
    from runbook.errors import StepFailed
    from steps.bosh.manifest import render_manifest

    try:
        rendered = render_manifest(args.iaas, args.vars, args.output, args.templates)
    except StepFailed as exc:  # a template or variables problem: the operator's input
        raise InputError(str(exc)) from None
    print(f"wrote {rendered.manifest_path} and {rendered.cloud_config_path}")
    return EXIT_OK
