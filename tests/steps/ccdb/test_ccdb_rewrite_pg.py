"""ccdb.rewrite_hosts against a real PostgreSQL holding a seeded Cloud Controller DB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook.api import StepFailed
from runbook.lab.ccdb_seed import SeedKeys, encrypt_values, oj_dump, seed
from runbook.testing import make_context, make_params
from steps.ccdb import crypto
from steps.ccdb.step import RewriteHosts
from tests.steps.ccdb.conftest import HOSTS, KEYS, RubyCall, environ, targets

SEED_KEYS = SeedKeys(db_encryption_key=KEYS["db_encryption_key"],
                     keys={"k1": KEYS["k1"], "k2": KEYS["k2"]}, labels=("k1", None, "k2"))
RING = crypto.KeyRing(KEYS["db_encryption_key"], {"k1": KEYS["k1"], "k2": KEYS["k2"]})
# (table, value column, salt column) of every encrypted column the seed fills
ENCRYPTED = [("apps", "encrypted_environment_variables", "salt"),
             ("apps", "encrypted_environment_json", "salt"),
             ("service_instances", "credentials", "salt"),
             ("service_bindings", "credentials", "salt"),
             ("service_bindings", "volume_mounts", "volume_mounts_salt"),
             ("service_keys", "credentials", "salt"),
             ("service_brokers", "auth_password", "salt"),
             ("env_groups", "environment_json", "salt")]


class Harness:
    def __init__(self, tmp_path: Path, dsn: str, **env: str) -> None:
        self.dsn = dsn
        self.step = RewriteHosts()
        self.ctx = make_context(tmp_path, targets=targets(), environ=environ(dsn, **env))

    def params(self, **extra: Any) -> Any:
        return make_params(RewriteHosts, {"target": "source", "hosts": dict(HOSTS), **extra})

    def run(self, **extra: Any) -> Any:
        params = self.params(**extra)
        plan = self.step.plan(params, self.step.observe(self.ctx, params))
        return self.step.apply(self.ctx, params, plan)


def columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                        (table,)).fetchall()
    return {r[0] for r in rows}


def snapshot(dsn: str) -> dict[str, list[Any]]:
    """Every row of every CC table, as PostgreSQL prints it (the before-image excluded)."""
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename NOT LIKE 'runbook_%' ORDER BY 1").fetchall()]
        return {t: conn.execute(f'SELECT t::text FROM "{t}" t ORDER BY id').fetchall()
                for t in tables}


def encrypted_values(dsn: str) -> list[dict[str, Any]]:
    out = []
    with psycopg.connect(dsn) as conn:
        for table, column, salt in ENCRYPTED:
            have = columns(conn, table)
            if column not in have:
                continue
            label = "encryption_key_label" if "encryption_key_label" in have else "NULL"
            iters = "encryption_iterations" if "encryption_iterations" in have else "2048"
            for row in conn.execute(f"SELECT id, {column}, {salt}, {label}, {iters} FROM {table} "
                                    f"WHERE {column} IS NOT NULL ORDER BY id").fetchall():
                out.append({"table": table, "column": column, "id": row[0], "value": row[1],
                            "salt": row[2], "label": row[3], "iterations": row[4]})
    return out


def expected_after(plain: str) -> str:
    # The seed has no look-alike hosts, so plain string replacement is the expectation.
    return plain.replace("10.0.0.5", "10.1.0.5").replace("db.old.example", "db.new.example")


def check_rewritten(before: list[dict[str, Any]], after: list[dict[str, Any]],
                    ring: crypto.KeyRing = RING) -> None:
    assert [(b["table"], b["id"]) for b in before] == [(a["table"], a["id"]) for a in after]
    for b, a in zip(before, after, strict=True):
        old = crypto.decrypt(b["value"], ring.key_for(b["label"]), b["salt"], b["iterations"])
        new = crypto.decrypt(a["value"], ring.key_for(a["label"]), a["salt"], a["iterations"])
        assert (a["salt"], a["iterations"]) == (b["salt"], b["iterations"])
        if b["column"] == "auth_password":
            assert new == old  # passwords are never rewritten
        else:
            assert new == expected_after(old)
            assert "10.0.0.5" not in new and "db.old.example" not in new
        assert "\n" not in a["value"] or a["value"] == b["value"]  # strict Base64 on write


def test_current_schema_both_kdfs_labels_and_null_label_fallback(postgres_dsn: str,
                                                                 tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=24, hosts=["10.0.0.5", "db.old.example"],
         keys=SEED_KEYS, kdf="mixed")
    before = encrypted_values(postgres_dsn)
    assert {len(v["salt"]) for v in before} == {8, 16}
    assert {v["label"] for v in before} == {"k1", "k2", None}
    h = Harness(tmp_path, postgres_dsn)
    result = h.run(batch_size=7)
    after = encrypted_values(postgres_dsn)
    check_rewritten(before, after)
    assert {a["label"] for a in after} == {"k1", "k2", None}  # labels kept
    assert result.outputs["columns"]["service_bindings.volume_mounts"] == 3
    assert result.outputs["columns"]["service_instances.dashboard_url"] == 24
    assert "service_brokers.auth_password" not in result.outputs["columns"]
    assert h.step.verify(h.ctx, h.params(), result) is True
    with psycopg.connect(postgres_dsn) as conn:
        urls = [r[0] for r in conn.execute("SELECT broker_url FROM service_brokers").fetchall()]
    assert urls == ["http://10.1.0.5:9000"]


def test_2014_schema_legacy_mime_values_with_the_empty_default_key(postgres_dsn: str,
                                                                   tmp_path: Path) -> None:
    keys = SeedKeys(db_encryption_key="")  # cf-release's 2014 default
    seed(postgres_dsn, era="2014", apps=12, hosts=["10.0.0.5"], keys=keys, kdf="legacy",
         mime=True)
    before = encrypted_values(postgres_dsn)
    assert all(v["value"].endswith("\n") for v in before)
    h = Harness(tmp_path, postgres_dsn, CC_KEY="")
    h.run()
    after = encrypted_values(postgres_dsn)
    check_rewritten(before, after, crypto.KeyRing("", {}))
    for b, a in zip(before, after, strict=True):  # rewritten: strict; untouched: same bytes
        if a["column"] == "auth_password":
            assert a["value"] == b["value"]
        else:
            assert "\n" not in a["value"]
    with psycopg.connect(postgres_dsn) as conn:
        assert "encryption_key_label" not in columns(conn, "apps")
    assert h.step.verify(h.ctx, h.params(), None) is True


def test_cloud_controller_reads_what_was_written(postgres_dsn: str, tmp_path: Path,
                                                 ruby: RubyCall) -> None:
    seed(postgres_dsn, era="current", apps=6, hosts=["10.0.0.5"], keys=SEED_KEYS, kdf="mixed")
    Harness(tmp_path, postgres_dsn).run()
    after = encrypted_values(postgres_dsn)
    answers = ruby([{"op": "decrypt", "input": a["value"], "key": RING.key_for(a["label"]),
                     "salt": a["salt"], "iterations": a["iterations"]} for a in after])
    for a, answer in zip(after, answers, strict=True):
        assert answer["output"] == crypto.decrypt(a["value"], RING.key_for(a["label"]),
                                                  a["salt"], a["iterations"])
        assert "10.0.0.5\"" not in answer["output"]
    ours = answers[0]["output"]
    again = ruby([{"op": "encrypt", "input": ours, "key": RING.key_for(after[0]["label"]),
                   "salt": after[0]["salt"], "iterations": after[0]["iterations"]}])
    assert again[0]["output"] == after[0]["value"]  # byte-exact with Ruby's ciphertext


def _add_binding(conn: psycopg.Connection[Any], guid: str, plain: str, label: str | None,
                 salt: str, key: str | None = None) -> int:
    [value] = encrypt_values(key if key is not None else RING.key_for(label), salt, 2048, [plain])
    row = conn.execute("INSERT INTO service_bindings (guid, credentials, salt, app_guid, "
                       "service_instance_guid, encryption_key_label) VALUES (%s, %s, %s, 'a', 's', "
                       "%s) RETURNING id", (guid, value, salt, label)).fetchone()
    assert row is not None
    return int(row[0])


def test_look_alike_hosts_unicode_and_multi_block_values(postgres_dsn: str, tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=2, hosts=["10.0.0.5"], keys=SEED_KEYS)
    long_tail = "データ✓" * 200
    with psycopg.connect(postgres_dsn) as conn:
        alike = _add_binding(conn, "alike", oj_dump({"h": "10.0.0.50", "n": "mydb.old.example",
                                                     "u": "http://110.0.0.5/"}), "k1",
                             "00000000000000aa")
        big = _add_binding(conn, "big", oj_dump({"uri": "http://10.0.0.5:80/", "t": long_tail}),
                           "k2", "000000bb")
        empty = conn.execute("INSERT INTO service_bindings (guid, credentials, salt, app_guid, "
                             "service_instance_guid) VALUES ('empty', '', NULL, 'a', 's') "
                             "RETURNING id").fetchone()
    query = "SELECT t::text FROM service_bindings t WHERE id = %s"
    with psycopg.connect(postgres_dsn) as conn:
        untouched = conn.execute(query, (alike,)).fetchone()
    Harness(tmp_path, postgres_dsn).run()
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute(query, (alike,)).fetchone() == untouched
        assert conn.execute("SELECT credentials FROM service_bindings WHERE id = %s",
                            empty).fetchone() == ("",)
    values = {v["id"]: v for v in encrypted_values(postgres_dsn)
              if v["table"] == "service_bindings"}
    plain = crypto.decrypt(values[big]["value"], KEYS["k2"], "000000bb")
    assert json.loads(plain) == {"uri": "http://10.1.0.5:80/", "t": long_tail}


def test_wrong_key_refuses_and_changes_nothing(postgres_dsn: str, tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=6, hosts=["10.0.0.5"], keys=SEED_KEYS)
    before = snapshot(postgres_dsn)
    h = Harness(tmp_path, postgres_dsn, K2="not-the-key")
    params = h.params()
    plan = h.step.plan(params, h.step.observe(h.ctx, params))
    assert plan.mutation == "read-only" and "refuse to change" in plan.actions[0].description
    with pytest.raises(StepFailed) as failure:
        h.step.apply(h.ctx, params, plan)
    message = str(failure.value)
    assert message.startswith("apps.encrypted_environment_variables: 2 value(s) with key label "
                              "'k2' do not decrypt (row ids 3, 6)")
    assert message.endswith("The key configured for that label (db_encryption_key for NULL or "
                            "unknown labels) is wrong or missing; nothing was changed")
    assert "not-the-key" not in message and "key-two" not in message
    assert snapshot(postgres_dsn) == before


def test_a_bad_value_found_midway_rolls_back_earlier_batches(postgres_dsn: str,
                                                             tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=0, keys=SEED_KEYS, tables=[])
    with psycopg.connect(postgres_dsn) as conn:
        for i in range(12):
            _add_binding(conn, f"g{i}", oj_dump({"host": "10.0.0.5"}), "k1", f"{i:016x}")
        # written under another key: the sampled first rows decrypt, this one does not
        _add_binding(conn, "bad", oj_dump({"host": "10.0.0.5"}), "k1", f"{99:016x}", key="other")
    before = snapshot(postgres_dsn)
    with pytest.raises(StepFailed, match=r"service_bindings.credentials: 1 value\(s\) with key "
                                         r"label 'k1' do not decrypt \(row ids 13\)"):
        Harness(tmp_path, postgres_dsn).run(batch_size=4)
    assert snapshot(postgres_dsn) == before
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM runbook_ccdb_before_image").fetchone() == (0,)


def test_revert_restores_identical_bytes_and_is_idempotent(postgres_dsn: str,
                                                           tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=10, hosts=["10.0.0.5", "db.old.example"],
         keys=SEED_KEYS, kdf="mixed")
    before = snapshot(postgres_dsn)
    h = Harness(tmp_path, postgres_dsn)
    result = h.run(rekey_to_label="k2")
    assert snapshot(postgres_dsn) != before
    assert h.ctx.checkpoints[0]["run_key"] == "test/step"  # type: ignore[attr-defined]
    h.step.revert(h.ctx, h.params(rekey_to_label="k2"), result.record)
    assert snapshot(postgres_dsn) == before
    h.step.revert(h.ctx, h.params(rekey_to_label="k2"), result.record)  # nothing left to undo
    assert snapshot(postgres_dsn) == before


def test_second_apply_changes_nothing(postgres_dsn: str, tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=5, hosts=["10.0.0.5"], keys=SEED_KEYS, kdf="mixed")
    h = Harness(tmp_path, postgres_dsn)
    first = h.run()
    middle = snapshot(postgres_dsn)
    params = h.params()
    plan = h.step.plan(params, h.step.observe(h.ctx, params))
    assert plan.mutation == "unchanged" and "holds an old host" in plan.reason
    second = h.step.apply(h.ctx, params, plan)
    assert first.changed and not second.changed and second.outputs["changed"] == 0
    assert snapshot(postgres_dsn) == middle


def test_rekey_moves_rows_to_the_new_label_keeping_salts(postgres_dsn: str,
                                                         tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=6, hosts=["10.0.0.5"], keys=SEED_KEYS, kdf="mixed")
    before = encrypted_values(postgres_dsn)
    h = Harness(tmp_path, postgres_dsn)
    result = h.run(rekey_to_label="k2")
    after = encrypted_values(postgres_dsn)
    assert {a["label"] for a in after} == {"k2"}
    check_rewritten(before, after)
    brokers = [a for a in after if a["column"] == "auth_password"]
    assert crypto.decrypt(brokers[0]["value"], KEYS["k2"], brokers[0]["salt"]) == "broker-secret-0"
    assert result.record["relabelled_rows"]["apps"] == 4  # the rows not already on k2
    assert h.step.verify(h.ctx, h.params(rekey_to_label="k2"), result) is True
    with pytest.raises(StepFailed, match="rekey_to_label 'k9' is not among the configured "
                                         r"database_encryption keys \(known labels: k1, k2\)"):
        h.run(rekey_to_label="k9")


def test_verify_catches_changes_outside_the_before_image(postgres_dsn: str,
                                                         tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=4, hosts=["10.0.0.5"], keys=SEED_KEYS)
    h = Harness(tmp_path, postgres_dsn)
    result = h.run()
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("UPDATE apps SET name = 'renamed' WHERE id = 1")
    assert h.step.verify(h.ctx, h.params(), result) is False


def test_revert_refuses_to_clobber_a_later_change(postgres_dsn: str, tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=3, hosts=["10.0.0.5"], keys=SEED_KEYS)
    h = Harness(tmp_path, postgres_dsn)
    result = h.run()
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("UPDATE service_brokers SET broker_url = 'http://10.2.0.9:9000'")
    middle = snapshot(postgres_dsn)
    with pytest.raises(StepFailed, match=r"^1 value\(s\) were changed by someone else after the "
                                         "rewrite; nothing was restored"):
        h.step.revert(h.ctx, h.params(), result.record)
    assert snapshot(postgres_dsn) == middle


def test_worker_pool_gives_the_same_bytes(postgres_dsn: str, postgres_server: Any,
                                          tmp_path: Path) -> None:
    other = postgres_server.create_database("ccdb_pool_twin")
    for dsn in (postgres_dsn, other):
        seed(dsn, era="current", apps=8, hosts=["10.0.0.5"], keys=SEED_KEYS, kdf="mixed")
    Harness(tmp_path / "a", postgres_dsn).run(workers=1)
    Harness(tmp_path / "b", other).run(workers=2, batch_size=5)
    assert encrypted_values(postgres_dsn) == encrypted_values(other)


def test_no_secret_reaches_facts_plan_outputs_or_record(postgres_dsn: str, tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=4, hosts=["10.0.0.5"], keys=SEED_KEYS)
    h = Harness(tmp_path, postgres_dsn)
    params = h.params()
    facts = h.step.observe(h.ctx, params)
    plan = h.step.plan(params, facts)
    result = h.step.apply(h.ctx, params, plan)
    text = json.dumps([facts, plan.to_dict(), result.outputs, result.record])
    for secret in ["pw0", "pw1", "p@ss", "broker-secret", *KEYS.values()]:
        assert secret not in text
    assert "postgres://user0:***@10.0.0.5:5432/db0" in text  # hosts stay visible


def test_unreachable_database_is_a_clear_failure(tmp_path: Path) -> None:
    dsn = "postgresql://cc:hunter2@127.0.0.1:1/ccdb"
    h = Harness(tmp_path, dsn)
    with pytest.raises(StepFailed) as failure:
        h.step.observe(h.ctx, h.params())
    assert str(failure.value).startswith("cannot connect to the Cloud Controller database at "
                                         "127.0.0.1:1/ccdb: ")
    assert "hunter2" not in str(failure.value)


def test_tables_filter_limits_the_rewrite(postgres_dsn: str, tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=3, hosts=["10.0.0.5"], keys=SEED_KEYS)
    before = snapshot(postgres_dsn)
    h = Harness(tmp_path, postgres_dsn)
    result = h.run(tables=["service_brokers"])
    assert result.outputs["columns"] == {"service_brokers.broker_url": 1}
    after = snapshot(postgres_dsn)
    assert {t for t in before if before[t] != after[t]} == {"service_brokers"}
    with pytest.raises(StepFailed, match=r"no Cloud Controller tables with encrypted or URL "
                                         r"columns found at .* \(tables filter: nope\); is this "
                                         "the CC database\\?"):
        h.run(tables=["nope"])


def test_lab_database_round_trip(postgres_server: Any, tmp_path: Path) -> None:
    from runbook.lab.ccdb_seed import CcdbLab

    with CcdbLab(apps=5, hosts=["10.0.0.5"], server=postgres_server, name="ccdb_lab_t") as lab:
        step = RewriteHosts()
        ctx = make_context(tmp_path, targets={"lab": {"ccdb": lab.profile()}},
                           environ=lab.environ())
        params = make_params(RewriteHosts, {"target": "lab", "hosts": {"10.0.0.5": "10.1.0.5"}})
        result = step.apply(ctx, params, step.plan(params, step.observe(ctx, params)))
        assert result.outputs["changed"] > 0
        assert step.verify(ctx, params, result) is True


def test_interrupted_apply_resumes_and_reverts_to_the_original(postgres_dsn: str,
                                                               tmp_path: Path) -> None:
    from runbook.api import StepCancelled

    seed(postgres_dsn, era="current", apps=12, hosts=["10.0.0.5"], keys=SEED_KEYS, kdf="mixed")
    before = snapshot(postgres_dsn)
    h = Harness(tmp_path, postgres_dsn)
    params = h.params(batch_size=5)
    h.ctx.cancelled.set()  # stop after the first batch has been written
    with pytest.raises(StepCancelled):
        h.step.apply(h.ctx, params, h.step.plan(params, None))
    assert snapshot(postgres_dsn) != before
    assert h.step.verify(h.ctx, params, None) is False  # not finished
    h.ctx.cancelled.clear()
    result = h.step.apply(h.ctx, params, h.step.plan(params, None))
    assert h.step.verify(h.ctx, params, result) is True
    h.step.revert(h.ctx, params, h.ctx.checkpoints[0])  # type: ignore[attr-defined]
    assert snapshot(postgres_dsn) == before


def test_an_old_host_put_back_later_keeps_the_first_before_image(postgres_dsn: str,
                                                                 tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=3, hosts=["10.0.0.5"], keys=SEED_KEYS)
    before = snapshot(postgres_dsn)
    h = Harness(tmp_path, postgres_dsn)
    h.run()
    with psycopg.connect(postgres_dsn) as conn:
        original = conn.execute("SELECT b.old_value FROM runbook_ccdb_before_image b WHERE "
                                "b.table_name = 'service_brokers' AND b.column_name = "
                                "'broker_url' ORDER BY b.row_id LIMIT 1").fetchone()
        assert original is not None and "10.0.0.5" in original[0]
        conn.execute("UPDATE service_brokers SET broker_url = %s WHERE id = "
                     "(SELECT min(id) FROM service_brokers)", original)
    again = h.run()  # the same run rewrites that value a second time
    assert again.outputs["changed"] == 1
    with psycopg.connect(postgres_dsn) as conn:
        kept = conn.execute("SELECT count(*) FROM runbook_ccdb_before_image WHERE "
                            "table_name = 'service_brokers' AND old_value = %s",
                            original).fetchone()
    assert kept == (1,)  # one entry, still holding the value from before the run
    h.step.revert(h.ctx, h.params(), again.record)
    assert snapshot(postgres_dsn) == before


def test_security_group_destinations_move_to_the_new_networks(postgres_dsn: str,
                                                              tmp_path: Path) -> None:
    seed(postgres_dsn, era="current", apps=2, hosts=["10.0.0.5"], keys=SEED_KEYS)
    rules = [
        '[{"protocol":"tcp","destination":"10.0.0.0/24","ports":"5432"}]',
        '[{"protocol":"tcp","destination":"10.0.0.5","ports":"3306","log":true}]',
        '[{"protocol":"all","destination":"10.0.0.0/8"}]',
        '[{"protocol":"all","destination":"0.0.0.0-9.255.255.255"}]',
    ]
    with psycopg.connect(postgres_dsn) as conn:
        for i, value in enumerate(rules):
            conn.execute("INSERT INTO security_groups (guid, name, rules) VALUES (%s, %s, %s)",
                         (f"asg-{i}", f"asg-{i}", value))
    before = snapshot(postgres_dsn)
    h = Harness(tmp_path, postgres_dsn)
    params = h.params(networks={"10.0.0.0/24": "172.16.8.0/24"})
    plan = h.step.plan(params, h.step.observe(h.ctx, params))
    text = "\n".join(a.description for a in plan.actions)
    assert "security_groups.rules (plain text): rewrite 2 of 4 rows" in text
    assert ("security_groups.rules: 1 destination(s) only partly overlap an old network and "
            "stay as they are; check them by hand: #3 10.0.0.0/8") in text
    result = h.step.apply(h.ctx, params, plan)
    with psycopg.connect(postgres_dsn) as conn:
        after = [r[0] for r in conn.execute("SELECT rules FROM security_groups ORDER BY id")]
    assert after == [rules[0].replace("10.0.0.0/24", "172.16.8.0/24"),
                     rules[1].replace("10.0.0.5", "10.1.0.5"), rules[2], rules[3]]
    assert result.outputs["columns"]["security_groups.rules"] == 2
    assert h.step.verify(h.ctx, params, result) is True
    h.step.revert(h.ctx, params, result.record)
    assert snapshot(postgres_dsn) == before
