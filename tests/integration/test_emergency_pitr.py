"""The P0 SOP's promise, end to end on the shop schema in the lab (db1 + its replica db2):
nothing is lost but the incident.

A backup with its binlog coordinates; the application writes (new orders with items, status
changes new→paid→shipped, an e-mail changed, an order cancelled); the incident (TRUNCATE of
order_items, then a DELETE of 1000 orders); the application writes again; then
`runbook play runbooks/emergency.yml`. Every write but the incident's went to a reference
copy too (``shop_ref``, loaded from the same script, each application transaction applied to
both schemas at once): afterwards the core tables equal the reference copy (CHECKSUM TABLE),
on the primary and on the replica. The same when the run is killed with SIGKILL at seeded
points of the restore stage (a journal record, a restore batch, a replay group) and finished
by `runbook resume`."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.integration.test_emergency_e2e import ROOT, SEED, WATCH, Lab, _restore_stage_seqs

pytestmark = pytest.mark.integration
TABLES = ("users", "products", "orders", "order_items")


class PitrLab(Lab):
    """The lab with the shop, its reference copy and a backup that carries its coordinates."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.backup = root / "shop-pitr.sql.gz"

    def replica_port(self) -> int:
        inv = (self.home / "lab" / "inventory.yml").read_text()
        import yaml

        return int(yaml.safe_load(inv)["all"]["hosts"]["db2"]["mysql_port"])

    def fresh(self) -> None:
        """shop and shop_ref from the same script (identical), the backup of shop taken with
        --master-data=2 --gtid (the coordinates point-in-time recovery starts from)."""
        self.sql("SET GLOBAL read_only = OFF", "DROP DATABASE IF EXISTS shop", "DROP DATABASE IF EXISTS shop_ref")
        script = (ROOT / "scripts" / "lab-shop.sql").read_bytes()
        ref = script.replace(b"CREATE DATABASE IF NOT EXISTS shop;", b"CREATE DATABASE shop_ref;").replace(b"USE shop;", b"USE shop_ref;")
        for text in (script, ref):
            subprocess.run(["mysql", "-uroot", "-h127.0.0.1", f"-P{self.port}"], input=text, check=True)
        dump = subprocess.run(["mariadb-dump", "-uroot", "-h127.0.0.1", f"-P{self.port}", "--single-transaction",
                               "--master-data=2", "--gtid", "--databases", "shop"], check=True, capture_output=True).stdout
        self.backup.write_bytes(gzip.compress(dump))

    def app(self, *statements: str) -> None:
        """One application transaction, applied to shop and to shop_ref together."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=False)
        try:
            with conn.cursor() as cur:
                for schema in ("shop", "shop_ref"):
                    for s in statements:
                        cur.execute(s.replace("{s}", schema))
            conn.commit()
        finally:
            conn.close()

    def writes(self, first_order: int, touched: range) -> None:
        """Ordinary traffic: 15 new orders with 2 items each, status changes, an e-mail, a price."""
        for i in range(first_order, first_order + 15):
            self.app(f"INSERT INTO {{s}}.orders VALUES ({i}, {1 + i % 2000}, '2026-06-01 10:00:00', 'new')",
                     f"INSERT INTO {{s}}.order_items VALUES ({i}, 1, {1 + i % 200}, 2), ({i}, 2, {1 + (i * 7) % 200}, 1)")
        for oid in touched:
            self.app(f"UPDATE {{s}}.orders SET status = 'paid' WHERE id = {oid}")
            self.app(f"UPDATE {{s}}.orders SET status = 'shipped' WHERE id = {oid}")  # new → paid → shipped
        self.app(f"UPDATE {{s}}.users SET email = 'moved{first_order}@example.com' WHERE id = {first_order % 2000 + 1}")
        self.app(f"UPDATE {{s}}.products SET price = price + 1 WHERE id = {first_order % 200 + 1}")

    def incident(self) -> None:
        """The bad deploy: order_items emptied, then 1000 orders deleted (shop only)."""
        self.sql("TRUNCATE shop.order_items", "DELETE FROM shop.orders WHERE id BETWEEN 9001 AND 10000")

    def sums(self, schema: str, port: int | None = None) -> list[object]:
        conn = pymysql.connect(host="127.0.0.1", port=port or self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("CHECKSUM TABLE " + ", ".join(f"{schema}.{t}" for t in TABLES))
                return [r[1] for r in cur.fetchall()]
        finally:
            conn.close()

    def scenario(self) -> None:
        self.fresh()
        self.writes(20001, range(1, 40))         # after the backup, before the incident
        self.app("DELETE FROM {s}.orders WHERE id = 5000")   # a cancelled order (its items cascade)
        self.incident()
        self.writes(20101, range(100, 140))      # after the incident, until the fence
        assert self.sums("shop") != self.sums("shop_ref")

    def play_pitr(self, env_extra: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
        return self.play(env_extra, (*extra, "--report", str(self.root / "pitr.json")), timeout=400)

    def assert_nothing_lost_but_the_incident(self, run_id: str) -> None:
        want = self.sums("shop_ref")
        assert self.sums("shop") == want, "the core tables differ from the reference copy (every write but the incident)"
        self.verified_after_assess(run_id)
        # the replica caught up: the same tables there (the caught_up step waited for it)
        assert self.sums("shop", self.replica_port()) == want


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PitrLab]:
    lab = PitrLab(tmp_path_factory.mktemp("pitr"))
    rc, out = lab.cli("lab", "up", "--replicas", "1")
    assert rc == 0, out
    lab.port = int(json.loads((lab.home / "lab" / "lab.json").read_text())["mysql_port"])
    try:
        yield lab
    finally:
        lab.cli("lab", "down")


def test_p0_nothing_lost_but_the_incident(lab: PitrLab) -> None:
    lab.scenario()
    channel = lab.root / "channel.txt"
    channel.unlink(missing_ok=True)
    rc, out, run_id = lab.play_pitr(extra=("-e", f"notify_cmd=cat >> {channel}"))
    assert rc == 0, out
    # the incident channel got the assessment, each stage and the final line, in order
    lines = channel.read_text().splitlines()
    assert len(lines) >= 6, lines
    assert lines[0].startswith("db1: stage [assess] started (budget 5m00s) — Emergency recovery, run ")
    assert "db1 P0: 2 problem(s) in shop's core tables" in lines[1]
    assert lines[2].startswith("db1: stage [assess] ok in ")
    assert any("writes stopped at" in x for x in lines)
    assert any(x.startswith("db1: stage [restore core tables] started (budget 30m00s)") for x in lines)
    assert any(x.startswith("db1: stage [restore core tables] ok in ") for x in lines)
    assert any("writes reopened" in x for x in lines)
    assert any("core recovery done" in x and "replayed" in x for x in lines)
    assert "full recovery done" in lines[-3] and lines[-2].startswith("db1: stage [full recovery] ok in ")
    assert lines[-1].startswith(f"Emergency recovery: run {run_id} SUCCEEDED in "), lines[-1]
    assert "Traceback" not in out
    # the damage report names the incident, the stop-writes question repeats it
    assert "TRUNCATE shop.order_items" in out and "DELETE shop.orders (1000 row(s))" in out
    assert "Stop all writes on db1 (P0)" in out and "the replay will leave out 2 transaction(s)" in out
    # the final line: what was replayed, what was left out, no "lost", no snapshot drop
    assert "REPLAYED" in out and "leaving out the incident's 2" in out
    assert "LOST" not in out and "snapshots drop" not in out
    lab.assert_nothing_lost_but_the_incident(run_id)


def _kill_points(lab: PitrLab) -> list[dict[str, str]]:
    """Seeded: a journal record of the restore stage, a restore batch (before or after its
    commit), a replay group (before or after its commit). RUNBOOK_TEST_SEED repeats a choice,
    another value explores others."""
    lab.scenario()
    rc, out, run_id = lab.play_pitr()
    assert rc == 0, out
    seqs = _restore_stage_seqs(lab, run_id)
    rnd = random.Random(SEED)
    return [{"RUNBOOK_FAULT_KILL_AT_SEQ": str(rnd.choice(seqs))},
            {"RUNBOOK_FAULT_RESTORE_KILL": f"{rnd.choice(['before_commit', 'after_commit'])}:{rnd.randint(1, 4)}"},
            # one replay group, before or after its commit (test_binlog_resume kills at every one)
            {"RUNBOOK_FAULT_BINLOG_KILL": f"{rnd.choice(['before_commit', 'after_commit'])}:1"}]


def test_p0_killed_at_seeded_points_then_resumed(lab: PitrLab) -> None:
    for fault in _kill_points(lab):
        lab.scenario()
        rc, out, run_id = lab.play_pitr(env_extra=fault)
        assert rc in (-9, 137), f"seed {SEED}, {fault}: not killed (rc={rc})\n{out}"
        transcript = out
        for _ in range(3):  # a resume is not killed (no fault); one more if a step was in doubt
            rc, out = lab.cli("resume", run_id, "--yes", timeout=400)
            transcript += out
            assert "Traceback" not in out, transcript
            if rc == 0:
                break
        assert rc == 0, f"seed {SEED}, {fault}:\n{transcript}"
        lab.assert_nothing_lost_but_the_incident(run_id)


def _play_level(lab: PitrLab, level: str) -> tuple[int, str, str]:
    before = lab.runs()
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "emergency.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "-e", f"level={level}", *WATCH, "--yes", timeout=400)
    new = lab.runs() - before
    assert len(new) == 1, out
    return rc, out, new.pop()


def _outcome(lab: PitrLab, run_id: str, step: str) -> str | None:
    """The journaled outcome of a step (None: it never started)."""
    out = None
    for line in (lab.home / run_id / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "outcome" and rec.get("step") == step:
            out = rec["status"]
    return out


def test_p1_reverts_the_incident_in_place_and_keeps_changes_made_since_the_backup(lab: PitrLab) -> None:
    """Finding 2: an order that went new→paid→shipped after the backup must not go back to the
    backup's status. P1 restores nothing here: it reverts the incident's transaction."""
    lab.fresh()
    lab.writes(20001, range(1, 40))                          # orders 1..39 shipped since the backup
    before = lab.sql("SELECT status FROM shop_ref.orders WHERE id = 10")
    assert before == [("shipped",)]
    lab.sql("UPDATE shop.orders SET status = 'new' WHERE id BETWEEN 1 AND 2000")   # the incident: 2000 rows
    lab.writes(20101, range(5000, 5040))                      # writes since, on other rows
    rc, out, run_id = _play_level(lab, "P1")
    assert rc == 0, out
    assert "UPDATE shop.orders (" in out and "plan (P1): restore nothing, revert 1 transaction(s) in place" in out
    assert "nothing restored from the backup" in out
    assert "REVERTED in place 1 transaction(s)" in out
    assert lab.sql("SELECT status FROM shop.orders WHERE id = 10") == before
    assert lab.sums("shop") == lab.sums("shop_ref")
    assert lab.sql("SELECT @@global.read_only") == [(0,)]
    assert _outcome(lab, run_id, "stop writes/Fence the server") == "changed"  # P1 fences


def test_p1_restores_only_what_the_incident_emptied_and_reverts_the_rest(lab: PitrLab) -> None:
    lab.fresh()
    lab.writes(20001, range(1, 40))
    lab.incident()                                            # TRUNCATE order_items; DELETE 1000 orders
    lab.writes(20101, range(100, 140))
    rc, out, _ = _play_level(lab, "P1")
    assert rc == 0, out
    assert "plan (P1): restore order_items, replay every other transaction since the backup up to the fence, revert 1" in out
    assert "RESTORED order_items " in out and "REVERTED in place 1 transaction(s)" in out and "REPLAYED" in out
    assert lab.sums("shop") == lab.sums("shop_ref")
    assert lab.sums("shop", lab.replica_port()) == lab.sums("shop_ref")


def test_p2_reverts_the_incident_with_writes_open(lab: PitrLab) -> None:
    lab.fresh()
    lab.writes(20001, range(1, 40))
    lab.sql("DELETE FROM shop.order_items WHERE order_id BETWEEN 1 AND 1000")     # the incident: 3000 rows
    lab.writes(20101, range(5000, 5040))
    rc, out, run_id = _play_level(lab, "P2")
    assert rc == 0, out
    assert "DELETE shop.order_items (3000 row(s))" in out and "REVERTED in place 1 transaction(s)" in out
    assert lab.sums("shop") == lab.sums("shop_ref")
    assert _outcome(lab, run_id, "stop writes/Fence the server") is None  # never fenced
    assert _outcome(lab, run_id, "repair (writes open)/Snapshot the core tables") == "skipped"  # nothing restored
    assert lab.sql("SELECT @@global.read_only") == [(0,)]


def test_p2_refuses_to_overwrite_a_row_changed_since_the_incident(lab: PitrLab) -> None:
    """Writes are open: when the application touched a row the incident changed, the revert
    writes nothing and the run stops (no automatic rollback, no overwrite)."""
    lab.fresh()
    lab.sql("DELETE FROM shop.order_items WHERE order_id BETWEEN 1 AND 1000")
    lab.sql("INSERT INTO shop.order_items VALUES (7, 1, 3, 9)")   # the application re-created a deleted line
    damaged = lab.sums("shop")
    rc, out, _ = _play_level(lab, "P2")
    assert rc == 1, out
    assert "refusing to revert, nothing was written" in out and "ROLLBACK" not in out
    assert lab.sums("shop") == damaged
    assert lab.sql("SELECT @@global.read_only") == [(0,)]


def test_partial_restore_reverts_the_deploy_and_keeps_rows_deleted_on_purpose(lab: PitrLab) -> None:
    """Finding 5: INSERT IGNORE from the backup resurrects rows deleted on purpose since. With
    the binlogs, partial-restore.yml reverts the deploy's transaction only."""
    lab.fresh()
    lab.app("DELETE FROM {s}.order_items WHERE order_id = 7")              # on purpose, after the backup
    lab.sql("DELETE FROM shop.order_items WHERE order_id BETWEEN 100 AND 599")  # the deploy: 1500 rows
    lab.writes(20101, range(5000, 5010))
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "partial-restore.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "-e", '{"tables": ["order_items"]}', "--yes")
    assert rc == 0, out
    assert "way: REVERT the transactions in place" in out and "REVERTED 1 transaction(s) of the deploy: 1500 row(s)" in out
    assert lab.sql("SELECT COUNT(*) FROM shop.order_items WHERE order_id = 7") == [(0,)]  # stays deleted
    assert lab.sums("shop") == lab.sums("shop_ref")
    assert lab.sql("SELECT @@global.read_only") == [(0,)]


@pytest.mark.parametrize("level", ["P0", "P1", "P2"])
def test_check_mode_shows_the_plan_and_changes_nothing(lab: PitrLab, level: str) -> None:
    lab.scenario()
    damaged = lab.sums("shop")
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "emergency.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "-e", f"level={level}", "--check", timeout=400)
    assert rc == 0, out
    assert f"plan ({level}):" in out and "Traceback" not in out
    if level != "P2":
        assert "would replay the other transactions written since the backup" in out
    assert lab.sums("shop") == damaged
    assert lab.sql("SELECT @@global.read_only") == [(0,)]
