"""``disks.sync``: copy persistent disks with rsync, a full pass before the window and a
delta pass inside it (seeds/000: "Transfer all persistent disks", then freeze and copy
what changed).

Only the standard library and ``runbook.api`` are imported here; the rsync helpers are
loaded when a step actually runs.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from runbook.api import (
    Action,
    Duration,
    Plan,
    Result,
    Secret,
    Step,
    StepContext,
    StepError,
    StepFailed,
    TargetRef,
    param,
)

if TYPE_CHECKING:
    from steps.disks.rsync import Endpoint, SshSettings, SyncStats


@dataclass(frozen=True)
class SshParams:
    user: str | None = param(None, doc="ssh user (default: the target's, else root)")
    port: int | None = param(None, doc="ssh port (default: the target's, else 22)")
    key: Secret | None = param(None, doc="private key by reference, e.g. ${file:keys/id}")
    key_file: str | None = param(None, doc="path of a private key file")
    known_hosts: str | None = param(None, doc="known_hosts file holding the host keys")
    host_key_checking: Literal["yes", "accept-new"] | None = param(
        None, doc="ssh StrictHostKeyChecking (default yes)")
    rsync_path: str | None = param(None, doc="remote rsync command, e.g. 'sudo rsync'")


@dataclass(frozen=True)
class DiskParams:
    name: str = param(doc="name of the disk in outputs and reports")
    source: str = param(doc="source directory (its contents are copied)")
    destination: str = param(doc="destination directory (made identical to the source)")
    source_host: str | None = param(None, doc="host holding the source (default: the "
                                              "target's ssh.host, unless destination_host)")
    destination_host: str | None = param(None, doc="host holding the destination")
    ssh: SshParams | None = param(None, doc="ssh settings for this disk only")
    exclude: list[str] = param(factory=list, doc="rsync --exclude patterns")


@dataclass(frozen=True)
class SyncDisksParams:
    disks: list[DiskParams] = param(doc="the disks to copy")
    mode: Literal["initial", "final"] = param("initial", doc="initial: full copy while the "
                                              "source runs; final: delta with the job stopped")
    target: TargetRef | None = param(None, doc="profile whose 'ssh' entry gives the defaults")
    ssh: SshParams | None = param(None, doc="ssh settings for every disk")
    max_parallel: int = param(2, doc="disks copied at the same time")
    source_stopped: bool | None = param(None, doc="whether the source jobs are stopped, "
                                        "e.g. from a bosh.instances output")
    require_stopped: list[str] | None = param(None, doc="command exiting 0 when the "
                                              "source jobs are stopped")
    allow_running: bool = param(False, doc="let 'final' run while the source still runs")
    timeout: Duration | None = param(None, doc="stop one disk's rsync after this long")
    acls: bool = param(True, doc="copy ACLs (-A); both sides' rsync must support them")
    xattrs: bool = param(True, doc="copy extended attributes (-X)")


class SyncDisks(Step[SyncDisksParams]):
    """Copy directories with ``rsync -aHAX --delete --numeric-ids`` over ssh or locally.

    Each entry of ``disks`` has ``name``, ``source``, ``destination`` and optionally
    ``source_host`` / ``destination_host`` (one side at most: rsync copies between a
    local and a remote directory), ``ssh`` (per-disk ssh settings) and ``exclude``.
    Outputs: ``disks.<name>`` with ``bytes_sent`` (data that moved from the source side),
    ``files_transferred``, ``files_changed``, ``files_deleted``, ``seconds``; the totals;
    and a one-line ``summary``.

    Reads the target key ``ssh`` (``host``, ``user``, ``port``, ``key`` by reference,
    ``key_file``, ``known_hosts``, ``host_key_checking``, ``rsync_path``) as defaults;
    a disk's own ``ssh`` and the step's ``ssh`` override it. One side of each disk may
    be remote. ``final`` refuses to start unless the source is known to be stopped
    (``source_stopped: true`` or a ``require_stopped`` command exiting 0) or
    ``allow_running: true``. Revert changes nothing: the source is only read, and the
    destination copy is kept for the next attempt.
    """

    Params = SyncDisksParams
    idempotent = True
    outputs = ("disks", "bytes_sent", "files_transferred", "files_changed", "seconds",
               "summary")

    def observe(self, ctx: StepContext, params: SyncDisksParams) -> dict[str, Any]:
        from steps.disks.rsync import RsyncError

        disks: dict[str, Any] = {}
        for disk in params.disks:
            src, dst, _ = self._endpoints(ctx, params, disk)
            try:
                stats = self._rsync(ctx, params, disk, dry_run=True)
            except (RsyncError, ValueError) as exc:
                disks[disk.name] = {"error": ctx.redact(str(exc))}
                continue
            disks[disk.name] = {"source": src.show(), "destination": dst.show(),
                                **stats.to_dict()}
        return {"disks": disks}

    def plan(self, params: SyncDisksParams, facts: dict[str, Any] | None) -> Plan:
        actions: list[Action] = []
        if params.mode == "final" and not params.allow_running:
            how = ("source_stopped" if params.source_stopped is not None
                   else " ".join(params.require_stopped or ["(nothing given: will refuse)"]))
            actions.append(Action.read(f"check the source jobs are stopped: {how}"))
        known = (facts or {}).get("disks")
        if known is None:
            return Plan.of(*actions, *(Action.unknown(
                f"rsync {d.name} ({params.mode}): {_where(d.source_host, d.source)} -> "
                f"{_where(d.destination_host, d.destination)}") for d in params.disks))
        in_sync = []
        for disk in params.disks:
            fact = known.get(disk.name, {})
            if "error" in fact:
                actions.append(Action.unknown(f"rsync {disk.name}: cannot tell what would be "
                                              f"copied ({fact['error']})"))
            elif fact.get("changes", 0) == 0:
                in_sync.append(disk.name)
            else:
                actions.append(Action.change(
                    f"rsync {disk.name} ({params.mode}): {fact['source']} -> "
                    f"{fact['destination']}: {fact['files_transferred']} files "
                    f"({_size(fact['transferred_size'])}) to copy, {fact['files_deleted']} to "
                    f"delete, {fact['changes']} changes"))
        note = f"already in sync: {', '.join(in_sync)}" if in_sync else ""
        if not any(a.mutates is not False for a in actions):
            return Plan.unchanged(f"all {len(params.disks)} disks already match their source")
        return Plan.of(*actions, reason=note)

    def apply(self, ctx: StepContext, params: SyncDisksParams, plan: Plan) -> Result:
        if plan.empty:
            zero = {d.name: {"bytes_sent": 0, "files_transferred": 0, "files_changed": 0,
                             "seconds": 0.0} for d in params.disks}
            return Result(outputs={"disks": zero, "bytes_sent": 0, "files_transferred": 0,
                                   "files_changed": 0, "seconds": 0.0,
                                   "summary": "all disks already in sync"},
                          record={"mode": params.mode, "disks": {}}, changed=False)
        if params.mode == "final" and not params.allow_running:
            self._require_stopped(ctx, params)
        started = time.monotonic()
        done: dict[str, dict[str, Any]] = {}
        failures: list[str] = []
        stopped: StepError | None = None
        workers = max(1, min(params.max_parallel, len(params.disks)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="disks-sync") as pool:
            futures = {d.name: pool.submit(self._sync_one, ctx, params, d)
                       for d in params.disks}
            for name, future in futures.items():
                try:
                    done[name] = future.result()
                except StepFailed as exc:
                    failures.append(str(exc))
                    continue
                except StepError as exc:  # timed out or cancelled: the others stop too
                    stopped = stopped or exc
                    continue
                # Durable progress: a crash after this point still shows which disks moved.
                ctx.checkpoint({"mode": params.mode, "disks": dict(done)})
        record = {"mode": params.mode, "disks": done}
        if stopped is not None:
            raise type(stopped)(str(stopped), record=record)
        if failures:
            raise StepFailed("; ".join(failures), record=record)
        outputs = {"disks": done,
                   "bytes_sent": sum(d["bytes_sent"] for d in done.values()),
                   "files_transferred": sum(d["files_transferred"] for d in done.values()),
                   "files_changed": sum(d["files_changed"] for d in done.values()),
                   "seconds": round(time.monotonic() - started, 3),
                   "summary": "; ".join(
                       f"{name}: {_size(d['bytes_sent'])} sent, {d['files_changed']} files "
                       f"changed, {d['seconds']:.1f}s" for name, d in done.items())}
        changed = any(d["files_changed"] for d in done.values())
        return Result(outputs=outputs, record=record, changed=changed)

    def verify(self, ctx: StepContext, params: SyncDisksParams,
               result: Result | None) -> bool | None:
        """A second pass in dry-run must find nothing to do; with a live source in
        ``initial`` mode differences are expected, so the answer is "cannot tell"."""
        from steps.disks.rsync import RsyncError

        differences = 0
        for disk in params.disks:
            try:
                stats = self._rsync(ctx, params, disk, dry_run=True)
            except (RsyncError, ValueError):
                return False
            differences += stats.changes
        if differences == 0:
            return True
        if params.mode == "initial" and params.source_stopped is not True:
            return None
        return False

    def revert(self, ctx: StepContext, params: SyncDisksParams, record: dict[str, Any]) -> None:
        # The source was only read and the old foundation keeps using it; the copy on the
        # destination is left in place so the next attempt only moves the difference.
        return None

    def revert_plan(self, params: SyncDisksParams, record: dict[str, Any]) -> Plan:
        return Plan.unchanged("nothing to undo: the source disks were only read")

    def can_revert(self, params: SyncDisksParams) -> bool:
        return True

    # -- helpers --------------------------------------------------------------------------

    def _sync_one(self, ctx: StepContext, params: SyncDisksParams,
                  disk: DiskParams) -> dict[str, Any]:
        from steps.disks.rsync import RsyncError

        ctx.check_cancelled()
        src, dst, _ = self._endpoints(ctx, params, disk)
        started = time.monotonic()
        try:
            stats = self._rsync(ctx, params, disk, dry_run=False)
        except ValueError as exc:
            raise StepFailed(f"disk {disk.name}: {exc}") from None
        except RsyncError as exc:
            raise StepFailed(
                f"disk {disk.name}: rsync {src.show()} -> {dst.show()} exited "
                f"{exc.returncode}: {ctx.redact(exc.message)}; check the host, ssh key and "
                f"paths, then retry (rsync resumes where it stopped)") from None
        return _disk_outputs(stats, src, dst, time.monotonic() - started)

    def _require_stopped(self, ctx: StepContext, params: SyncDisksParams) -> None:
        if params.source_stopped is False:
            raise StepFailed("final sync refused: the source jobs are still running "
                             "(source_stopped is false); stop them first or set "
                             "allow_running: true")
        if params.require_stopped:
            done = ctx.run(list(params.require_stopped), timeout=params.timeout)
            if done.returncode != 0:
                raise StepFailed(f"final sync refused: '{' '.join(params.require_stopped)}' "
                                 f"exited {done.returncode}, so the source jobs may still be "
                                 "running; stop them first or set allow_running: true")
            return
        if params.source_stopped is not True:
            raise StepFailed("final sync refused: nothing says the source jobs are stopped; "
                             "give source_stopped or require_stopped, or allow_running: true")

    def _rsync(self, ctx: StepContext, params: SyncDisksParams, disk: DiskParams, *,
               dry_run: bool) -> SyncStats:
        from steps.disks.rsync import run_sync

        src, dst, ssh = self._endpoints(ctx, params, disk)
        timeout = float(params.timeout) if params.timeout is not None else None
        # A file vanishing under a live source is expected in "initial", not in "final".
        return run_sync(lambda argv: ctx.run(argv, timeout=timeout), src, dst, ssh,
                        dry_run=dry_run, excludes=disk.exclude, acls=params.acls,
                        xattrs=params.xattrs,
                        tolerate_vanished=dry_run or params.mode == "initial")

    def _endpoints(self, ctx: StepContext, params: SyncDisksParams,
                   disk: DiskParams) -> tuple[Endpoint, Endpoint, SshSettings]:
        from steps.disks.rsync import Endpoint, SshSettings

        base: dict[str, Any] = {}
        if params.target is not None:
            base = dict(ctx.target(params.target).get("ssh") or {})
        for layer in (params.ssh, disk.ssh):
            if layer is not None:
                base.update({k: v for k, v in vars(layer).items() if v is not None})
        source_host = disk.source_host
        if source_host is None and disk.destination_host is None:
            source_host = base.get("host")
        key = base.get("key")
        if key is not None and not isinstance(key, Secret):
            raise StepFailed("the ssh key must be given by reference, like "
                             "key: \"${file:keys/id_ed25519}\"; for a key file path use key_file")
        settings = SshSettings(
            user=str(base.get("user") or "root"), port=int(base.get("port") or 22), key=key,
            key_file=base.get("key_file"), known_hosts=base.get("known_hosts"),
            host_key_checking=str(base.get("host_key_checking") or "yes"),
            rsync_path=base.get("rsync_path"))
        return (Endpoint(disk.source, source_host), Endpoint(disk.destination,
                                                              disk.destination_host), settings)


def _disk_outputs(stats: SyncStats, src: Endpoint, dst: Endpoint,
                  seconds: float) -> dict[str, Any]:
    # rsync counts bytes from the side that runs it; when pulling from a remote source the
    # data arrives as "received", so report the direction the data actually moved.
    pulled = src.host is not None
    return {"source": src.show(), "destination": dst.show(),
            "bytes_sent": stats.bytes_received if pulled else stats.bytes_sent,
            "bytes_returned": stats.bytes_sent if pulled else stats.bytes_received,
            "literal_bytes": stats.literal_bytes, "total_size": stats.total_size,
            "files_transferred": stats.files_transferred, "files_deleted": stats.files_deleted,
            "files_changed": stats.changes, "seconds": round(seconds, 3)}


def _where(host: str | None, path: str) -> str:
    return path if host is None else f"{host}:{path}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
