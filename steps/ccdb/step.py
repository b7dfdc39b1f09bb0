"""``ccdb.rewrite_hosts``: re-point the Cloud Controller database at the new hosts.

Imports only the standard library and ``runbook.api`` at module level: the engine loads
this module to check ``with:`` during ``runbook validate``. psycopg and cryptography are
loaded on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook.api import (
    Action,
    MissingDependency,
    Plan,
    Result,
    Secret,
    Step,
    StepContext,
    StepFailed,
    TargetRef,
    param,
    reveal_text,
)

if TYPE_CHECKING:
    from steps.ccdb import rewrite as rewrite_module

BEFORE_IMAGE = "runbook_ccdb_before_image"  # also steps.ccdb.database.BEFORE_IMAGE


@dataclass(frozen=True)
class DatabaseEncryption:
    keys: dict[str, Secret] = param(factory=dict, doc="key label -> key (secret references)")
    current_key_label: str | None = param(None, doc="the label Cloud Controller writes with")


@dataclass(frozen=True)
class RewriteHostsParams:
    target: TargetRef = param(doc="connection profile; its 'ccdb' key is read")
    hosts: dict[str, str] = param(doc="old -> new: IPs, hostnames, host:port pairs, URL prefixes")
    networks: dict[str, str] = param(
        factory=dict, doc="old -> new CIDRs of the same size: security group destinations "
                          "inside an old network move to the same offset in the new one")
    dsn: Secret | None = param(None, doc="overrides the profile's ccdb.dsn")
    db_encryption_key: Secret | None = param(None, doc="overrides ccdb.db_encryption_key")
    database_encryption: DatabaseEncryption | None = param(
        None, doc="overrides ccdb.database_encryption {keys, current_key_label}")
    rekey_to_label: str | None = param(None, doc="also move every row to this key label")
    batch_size: int = param(1000, doc="rows per read and per write transaction")
    tables: list[str] = param(factory=list, doc="only these tables (default: all known)")
    workers: int = param(0, doc="processes for decryption (0: one per core when large)")


class RewriteHosts(Step[RewriteHostsParams]):
    """Rewrite old -> new hosts in the Cloud Controller database, decrypting and
    re-encrypting encrypted columns exactly as Cloud Controller does.

    Reads target key ``ccdb``: ``dsn``, ``db_encryption_key``, ``database_encryption``
    (``keys``: label -> key, ``current_key_label``). Explicit parameters override them.

    Re-encrypted values keep their row's salt, label and iteration count, unless
    ``rekey_to_label`` moves the row (all its encrypted columns) to that label. The
    before-image of every changed value stays in the CC database, in table
    ``runbook_ccdb_before_image`` keyed by run and step; revert restores it exactly.
    Outputs: ``changed`` (values rewritten), ``columns`` (table.column -> count),
    ``before_image_table``, ``run_key``.
    """

    Params = RewriteHostsParams
    idempotent = True
    outputs = ("changed", "columns", "before_image_table", "run_key")

    def observe(self, ctx: StepContext, params: RewriteHostsParams) -> dict[str, Any]:
        rw = _rewrite()
        config = self._config(ctx, params)
        try:
            found, discovered, where = rw.scan(config, ctx.check_cancelled)
        except _errors() as exc:
            raise StepFailed(str(exc)) from None
        facts: dict[str, Any] = found.to_facts(discovered, where)
        return facts

    def plan(self, params: RewriteHostsParams, facts: dict[str, Any] | None) -> Plan:
        hosts = ", ".join(f"{old} -> {new}" for old, new in params.hosts.items())
        if facts is None:
            return Plan.of(Action.unknown(f"rewrite {hosts} in the Cloud Controller database "
                                          f"of target '{params.target}' (not observed)"))
        where = facts.get("database", "?")
        if facts.get("undecryptable"):
            return Plan.of(Action.read(f"refuse to change {where}: {facts['undecryptable']}"),
                           reason="the encryption keys do not match the data")
        actions: list[Action] = []
        total = 0
        for table in facts.get("tables", []):
            for column in table["columns"]:
                if not column["change"]:
                    continue
                total += column["change"]
                kind = "encrypted" if column["encrypted"] else "plain text"
                line = (f"{table['table']}.{column['column']} ({kind}): rewrite "
                        f"{column['change']} of {table['rows']} rows")
                if column["encrypted"] and params.rekey_to_label:
                    line += f", re-encrypted under label {params.rekey_to_label!r}"
                if column["examples"]:
                    line += "; e.g. " + "; ".join(column["examples"][:2])
                actions.append(Action.change(line))
        notes = [f"{column}: {len(lines)} destination(s) only partly overlap an old network "
                 f"and stay as they are; check them by hand: {'; '.join(lines[:5])}"
                 for column, lines in (facts.get("unresolved_destinations") or {}).items()]
        if not actions:
            scanned = sum(t["rows"] for t in facts.get("tables", []))
            return Plan.unchanged(f"no value in {where} holds an old host ({scanned} rows in "
                                  f"{len(facts.get('tables', []))} tables scanned)"
                                  + (f" and every row uses label {params.rekey_to_label!r}"
                                     if params.rekey_to_label else "")
                                  + "".join(f"; {note}" for note in notes))
        actions.append(Action.change(f"keep the before-image of {total} values in {where} "
                                     f"table {BEFORE_IMAGE}"))
        actions += [Action.read(note) for note in notes]
        return Plan.of(*actions, reason=f"{facts.get('era', '?')} schema; hosts {hosts}")

    def apply(self, ctx: StepContext, params: RewriteHostsParams, plan: Plan) -> Result:
        rw = _rewrite()
        config = self._config(ctx, params)
        try:
            record = rw.apply(config, ctx.checkpoint, ctx.check_cancelled, ctx.log)
        except _errors() as exc:
            raise StepFailed(str(exc)) from None
        changed = sum(record["changed"].values())
        outputs = {"changed": changed, "columns": record["changed"],
                   "before_image_table": record["before_image_table"],
                   "run_key": record["run_key"]}
        return Result(outputs=outputs, record=record, changed=changed > 0)

    def verify(self, ctx: StepContext, params: RewriteHostsParams,
               result: Result | None) -> bool | None:
        rw = _rewrite()
        try:
            ok: bool = rw.verify(self._config(ctx, params), ctx.log)
            return ok
        except _errors() as exc:
            ctx.log.warning("ccdb.rewrite_hosts verify failed: %s", exc)
            return False

    def revert(self, ctx: StepContext, params: RewriteHostsParams, record: dict[str, Any]) -> None:
        rw = _rewrite()
        run_key = str(record.get("run_key") or _run_key(ctx))
        try:
            restored = rw.revert(self._config(ctx, params), run_key)
        except _errors() as exc:
            raise StepFailed(str(exc)) from None
        ctx.log.info("ccdb.rewrite_hosts restored %d value(s)", sum(restored.values()))

    def revert_plan(self, params: RewriteHostsParams, record: dict[str, Any]) -> Plan:
        count = sum(record.get("changed", {}).values())
        return Plan.of(Action.change(f"restore {count} values of {record.get('database', '?')} "
                                     f"from {BEFORE_IMAGE} (run key {record.get('run_key')})"))

    # -- configuration ----------------------------------------------------------------------

    def _config(self, ctx: StepContext, params: RewriteHostsParams) -> rewrite_module.Config:
        rw = _rewrite()
        from steps.ccdb.crypto import KeyRing
        from steps.ccdb.rowwork import Work

        profile = ctx.target(params.target).get("ccdb")
        if not isinstance(profile, dict):
            profile = {}
        dsn = params.dsn if params.dsn is not None else profile.get("dsn")
        if dsn is None:
            raise StepFailed(f"no database: set 'dsn' or give target '{params.target}' a "
                             "'ccdb: {dsn: ...}' entry")
        default_key = (params.db_encryption_key if params.db_encryption_key is not None
                       else profile.get("db_encryption_key"))
        if params.database_encryption is not None:
            keys: dict[str, Any] = dict(params.database_encryption.keys)
            current = params.database_encryption.current_key_label
        else:
            section = profile.get("database_encryption") or {}
            keys = dict(section.get("keys") or {})
            current = section.get("current_key_label")
        keyring = KeyRing(None if default_key is None else str(reveal_text(default_key)),
                          {str(k): str(reveal_text(v)) for k, v in keys.items()},
                          None if current is None else str(current))
        if params.batch_size < 1:
            raise StepFailed("batch_size must be at least 1")
        config: rewrite_module.Config = rw.Config(
            dsn=str(reveal_text(dsn)),
            work=Work(keyring, dict(params.hosts), params.rekey_to_label,
                      dict(params.networks)),
            batch_size=params.batch_size, tables=list(params.tables), workers=params.workers,
            run_key=_run_key(ctx))
        return config


def _run_key(ctx: StepContext) -> str:
    """The before-image key: one per run and step, so a retry resumes its own record."""
    return f"{ctx.run_id}/{ctx.step_id}"


def _rewrite() -> Any:
    try:
        from steps.ccdb import rewrite
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingDependency(exc.name or "psycopg", "ccdb") from exc
    return rewrite


def _errors() -> tuple[type[Exception], ...]:
    from steps.ccdb.hostmap import HostMapError

    rw = _rewrite()
    return (rw.RewriteError, rw.db.CcdbError, HostMapError)
