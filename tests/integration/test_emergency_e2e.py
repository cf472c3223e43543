"""runbooks/emergency.yml end to end against the lab (a private MariaDB + sshd, so fencing and
killing sessions touch nobody else), with a backup that has NO binlog coordinates (the
point-in-time recovery path is tests/integration/test_emergency_pitr.py): after a simulated
incident the core tables equal the backup (CHECKSUM TABLE), the run says which window of writes
is lost and keeps the snapshot, writes are open, every verify after the restore passed, exit 0. Killed
with SIGKILL at a random instant of the restore stage (a journal record, or around a restore
batch's commit) and resumed with `runbook resume RUN_ID`, it ends the same way."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.cliutil import rows_on

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CORE = "shop.users, shop.products, shop.orders, shop.order_items"
RESTORE_STAGE = "restore core tables"
SEED = int(os.environ.get("RUNBOOK_TEST_SEED") or random.randrange(1 << 30))
WATCH = ("-e", "watch_polls=1", "-e", "watch_interval_s=0")  # the watch after reopen: one look, no wait


class Lab:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.backup = root / "shop-full.sql.gz"
        self.port = 0

    def cli(self, *args: str, env_extra: dict[str, str] | None = None, timeout: float = 240) -> tuple[int, str]:
        env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(self.home), **(env_extra or {}))
        res = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return res.returncode, res.stdout + res.stderr

    def sql(self, *stmts: str) -> list[tuple[object, ...]]:
        return rows_on(pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True), *stmts)

    def load_shop_and_back_it_up(self) -> None:
        """The shop (scripts/lab-shop.sql, through the mysql client as a user would load it) and
        its backup taken with mariadb-dump, once."""
        self.sql("DROP DATABASE IF EXISTS shop")
        with open(ROOT / "scripts" / "lab-shop.sql", "rb") as f:
            subprocess.run(["mysql", "-uroot", "-h127.0.0.1", f"-P{self.port}"], stdin=f, check=True)
        if not self.backup.exists():
            dump = subprocess.run(["mariadb-dump", "-uroot", "-h127.0.0.1", f"-P{self.port}", "--single-transaction",
                                   "--databases", "shop"], check=True, capture_output=True).stdout
            self.backup.write_bytes(gzip.compress(dump))

    def incident(self) -> None:
        self.sql("SET FOREIGN_KEY_CHECKS=0", "TRUNCATE shop.order_items",
                 "DELETE FROM shop.orders WHERE id BETWEEN 9001 AND 10000",
                 "INSERT INTO shop.orders VALUES (20001, 1, NOW(), 'new'), (20002, 2, NOW(), 'new')",  # written after the backup
                 "DELETE FROM shop.products WHERE id > 190",
                 "UPDATE shop.users SET email = CONCAT('x', id, '@corrupt') WHERE id % 10 = 0")

    def checksums(self) -> list[tuple[object, ...]]:
        return self.sql(f"CHECKSUM TABLE {CORE}")

    def runs(self) -> set[str]:
        return {p.name for p in self.home.iterdir() if p.is_dir() and p.name[:1].isdigit()}

    def play(self, env_extra: dict[str, str] | None = None, extra: tuple[str, ...] = (), timeout: float = 240
             ) -> tuple[int, str, str]:
        """`runbook play runbooks/emergency.yml` on the lab's shop from ``self.backup``: (rc, output, run id)."""
        before = self.runs()
        rc, out = self.cli("play", str(ROOT / "runbooks" / "emergency.yml"), "-i", str(self.home / "lab" / "inventory.yml"),
                           "-e", "schema=shop", "-e", f"backup={self.backup}", *WATCH, *extra, "--yes", env_extra=env_extra,
                           timeout=timeout)
        new = self.runs() - before
        assert len(new) == 1, out
        return rc, out, new.pop()

    def verified_after_assess(self, run_id: str) -> list[dict[str, object]]:
        """The run's checks after the assess stage (its report): there are some, none failed;
        and writes are open again."""
        assert self.sql("SELECT @@global.read_only") == [(0,)], "writes are still fenced"
        rc, out = self.cli("report", run_id, "--format", "json", "-o", str(self.root / f"{run_id}.json"))
        assert rc == 0, out
        checks = json.loads((self.root / f"{run_id}.json").read_text())["verification"]
        after = [c for c in checks if c["stage"] != "assess"]
        assert after and all(c["result"] != "fail" for c in after), after
        return after

    def assert_recovered(self, run_id: str, expected_sums: list[tuple[object, ...]]) -> None:
        assert self.checksums() == expected_sums, "the core tables differ from the backup"
        after = self.verified_after_assess(run_id)
        stages = {c["stage"] for c in after}
        assert {RESTORE_STAGE, "full recovery"} <= stages


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("emergency"))
    rc, out = lab.cli("lab", "up", "--replicas", "1")  # db1 and its replica db2: the SOPs check replicas
    assert rc == 0, out
    lab.port = int(json.loads((lab.home / "lab" / "lab.json").read_text())["mysql_port"])
    try:
        lab.load_shop_and_back_it_up()
        yield lab
    finally:
        lab.cli("lab", "down")


def test_emergency_after_an_incident_ends_with_the_backup(lab: Lab) -> None:
    lab.load_shop_and_back_it_up()
    backup_sums = lab.checksums()
    lab.incident()
    assert lab.checksums() != backup_sums
    rc, out, run_id = lab.play()
    assert rc == 0, out
    assert "Traceback" not in out
    # the damage report showed what was broken before anything changed
    assert "problem(s) in the core tables" in out and "rows order_items" in out
    assert "RESTORED order_items, orders, products, users" in out
    assert "replicas: db2 caught up, core tables equal the primary's" in out
    assert "connection(s) (at reopen" in out  # the watch after reopen
    lab.assert_recovered(run_id, backup_sums)
    # This backup has no binlog coordinates: no point-in-time recovery. The run asked, and its
    # last line says which window of writes is lost from the core tables and where they are;
    # the snapshot holds them (the two orders written after the backup), and is never offered
    # for dropping.
    assert "it holds no binlog coordinates" in out and "the binlogs since it cannot be read" in out
    assert "LOST from the core tables: every write between the backup" in out and "never `runbook snapshots drop" in out
    rows = lab.sql(f"SELECT COUNT(*) FROM _rb_snap_{run_id.replace('-', '_')}.shop__orders WHERE id > 20000")
    assert rows == [(2,)]


def _restore_stage_seqs(lab: Lab, run_id: str) -> list[int]:
    """Journal sequence numbers of the restore stage's records (from a complete run)."""
    seqs, inside = [], False
    for line in (lab.home / run_id / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "stage_start":
            inside = rec.get("stage") == RESTORE_STAGE
        elif rec.get("kind") == "stage_end" and rec.get("stage") == RESTORE_STAGE:
            break
        elif inside and isinstance(rec.get("seq"), int):
            seqs.append(rec["seq"])
    return seqs


def _kill_points(lab: Lab) -> list[dict[str, str]]:
    """A random journal record of the restore stage, and a random restore batch (killed
    before its commit, and after it). Seeded: RUNBOOK_TEST_SEED repeats a failing choice."""
    lab.load_shop_and_back_it_up()
    lab.incident()
    rc, out, run_id = lab.play()
    assert rc == 0, out
    seqs = _restore_stage_seqs(lab, run_id)
    assert seqs, "no journal record in the restore stage"
    rnd = random.Random(SEED)
    batches = 4  # the shop's four core tables are at least four batches
    return [{"RUNBOOK_FAULT_KILL_AT_SEQ": str(rnd.choice(seqs))},
            {"RUNBOOK_FAULT_RESTORE_KILL": f"before_commit:{rnd.randint(1, batches)}"},
            {"RUNBOOK_FAULT_RESTORE_KILL": f"after_commit:{rnd.randint(1, batches)}"}]


def test_killed_during_the_restore_stage_then_resumed(lab: Lab) -> None:
    for fault in _kill_points(lab):
        lab.load_shop_and_back_it_up()
        backup_sums = lab.checksums()
        lab.incident()
        rc, out, run_id = lab.play(env_extra=fault)
        assert rc == -9 or rc == 137, f"seed {SEED}, {fault}: not killed (rc={rc})\n{out}"
        transcript = out
        for _ in range(3):  # a resume is not killed (no fault); one more if a step was in doubt
            rc, out = lab.cli("resume", run_id, "--yes")
            transcript += out
            assert "Traceback" not in out, transcript
            if rc == 0:
                break
        assert rc == 0, f"seed {SEED}, {fault}:\n{transcript}"
        lab.assert_recovered(run_id, backup_sums)


def test_drill_restores_the_newest_backup_into_a_scratch_schema(lab: Lab) -> None:
    lab.load_shop_and_back_it_up()  # shop equals the backup: checksums against it must match
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "drill.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", f"backup_dir={lab.root}", "-e", "backup_glob=*.sql.gz", "-e", "compare_schema=shop",
                      "--yes", "--report", str(lab.root / "drill.html"))
    assert rc == 0, out
    assert f"drill passed: {lab.backup} restored" in out and "checksums vs shop: 6 table(s) match" in out
    assert "replicas: db2 caught up and 6 table(s) match" in out
    assert lab.sql("SHOW DATABASES LIKE 'drill_restore'") == []  # cleaned up
    html = (lab.root / "drill.html").read_text()
    assert "Restore the backup into the scratch schema" in html


def test_partial_restore_brings_back_missing_rows_and_keeps_new_ones(lab: Lab) -> None:
    lab.load_shop_and_back_it_up()
    backup_items = lab.sql("SELECT COUNT(*) FROM shop.order_items")[0][0]
    # the bad deploy: rows deleted; the application meanwhile changed one and added one
    lab.sql("DELETE FROM shop.order_items WHERE order_id <= 500",
            "UPDATE shop.order_items SET qty = 99 WHERE order_id = 501 AND line = 1",
            "INSERT INTO shop.order_items VALUES (1, 9, 5, 2)")
    report = lab.root / "partial.json"
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "partial-restore.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "-e", '{"tables": ["order_items"]}', "--yes",
                      "--report", str(report))
    assert rc == 0, out
    assert "order_items: 1500 row(s) brought back" in out
    assert lab.sql("SELECT COUNT(*) FROM shop.order_items") == [(backup_items + 1,)]
    assert lab.sql("SELECT qty FROM shop.order_items WHERE order_id = 501 AND line = 1") == [(99,)]  # not overwritten
    assert lab.sql("SELECT @@global.read_only") == [(0,)]  # never fenced
    # "at least" is measured against the backup's own rows (30000), not the 1500 the step inserted
    checks = json.loads(report.read_text())["verification"]
    rows = [c for c in checks if c["step"] == "Verify the tables" and c["kind"] == "row_count"]
    assert rows and rows[0]["expected"] == backup_items and rows[0]["result"] == "pass", rows


def test_partial_restore_of_a_dropped_table(lab: Lab) -> None:
    lab.load_shop_and_back_it_up()
    backup_sums = lab.checksums()
    lab.sql("DROP TABLE shop.order_items")
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "partial-restore.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "-e", '{"tables": ["order_items"]}', "--yes")
    assert rc == 0, out
    assert "recorded as absent" in out and "order_items: 30000 row(s) brought back" in out
    assert lab.checksums() == backup_sums


@pytest.mark.parametrize("level", ["P1", "P2"])
def test_levels_p1_merges_under_a_fence_p2_never_fences(lab: Lab, level: str) -> None:
    lab.load_shop_and_back_it_up()
    backup_sums = lab.checksums()
    lab.incident()  # includes two orders written after the backup (ids 20001, 20002)
    lab.sql("UPDATE shop.orders SET status = 'new' WHERE id <= 300 AND status <> 'new'")  # 200 rows damaged
    before = lab.runs()
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "emergency.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "-e", f"level={level}", *WATCH, "--yes")
    assert rc == 0, out
    (run_id,) = lab.runs() - before
    # rows written since the backup stay: the core tables are the backup plus them
    assert lab.sql("SELECT COUNT(*) FROM shop.orders WHERE id > 20000") == [(2,)]
    assert lab.checksums() != backup_sums
    assert lab.sql("SELECT COUNT(*) FROM shop.order_items") == [(30000,)]
    damaged = lab.sql("SELECT COUNT(*) FROM shop.orders WHERE id <= 300 AND status = 'new'")
    journal = (lab.home / run_id / "journal.jsonl").read_text()
    if level == "P1":
        assert damaged == [(100,)]  # upsert: the backup's version of each row wins (its 100 'new' ones)
        assert "stop writes/Fence the server" in journal
    else:
        assert damaged == [(300,)]  # ignore: existing rows are left as they are
        assert "stop writes/Fence the server" not in journal  # P2 never fences
    # upsert is the backup's row for each primary key, unique columns too (issue 15 item 8): P1 puts the damaged
    # emails back; ignore (P2) leaves existing rows as they are
    corrupt = lab.sql("SELECT COUNT(*) FROM shop.users WHERE email LIKE '%@corrupt'")
    assert corrupt == ([(0,)] if level == "P1" else [(200,)])
    assert lab.sql("SELECT @@global.read_only") == [(0,)]


def test_check_mode_shows_the_plan_and_changes_nothing(lab: Lab) -> None:
    lab.load_shop_and_back_it_up()
    lab.incident()
    damaged = lab.checksums()
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "emergency.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "--check")
    assert rc == 0, out
    assert "would restore 4 table(s) into shop" in out and "problem(s) in the core tables" in out
    assert lab.checksums() == damaged
    assert lab.sql("SELECT @@global.read_only") == [(0,)]


def test_a_dropped_core_table_is_created_from_the_backup(lab: Lab) -> None:
    """The classic P0: DROP TABLE. The space checks, the snapshot and the restore must not
    dead-end on the missing table: it is recorded absent, created from the dump, and said so."""
    lab.load_shop_and_back_it_up()
    backup_sums = lab.checksums()
    lab.sql("DROP TABLE shop.order_items")
    rc, out, run_id = lab.play()
    assert rc == 0, out
    assert "Traceback" not in out
    assert "order_items: missing" in out or "missing tables: order_items" in out  # the damage report names it
    assert "recorded as absent" in out  # the snapshot knows there was nothing to copy
    assert "created from the backup: order_items" in out  # the final line says it
    lab.assert_recovered(run_id, backup_sums)


def test_partial_restore_by_backup_never_turns_a_foreign_key_error_into_an_ignored_row(lab: Lab) -> None:
    """Finding 5: INSERT IGNORE turns a foreign-key failure into a warning. An order cancelled
    on purpose since the backup (its items cascaded away) must not come back as orphan items,
    nor be counted as "already there": the restore fails, naming the table, and writes nothing
    of it."""
    lab.load_shop_and_back_it_up()
    lab.sql("DELETE FROM shop.orders WHERE id = 7",                       # cancelled on purpose
            "DELETE FROM shop.order_items WHERE order_id BETWEEN 100 AND 599")  # the bad deploy
    before = lab.sql("SELECT COUNT(*) FROM shop.order_items")
    rc, out = lab.cli("play", str(ROOT / "runbooks" / "partial-restore.yml"), "-i", str(lab.home / "lab" / "inventory.yml"),
                      "-e", "schema=shop", "-e", f"backup={lab.backup}", "-e", '{"tables": ["order_items"]}', "--yes")
    assert rc == 1, out
    assert "order_items" in out and ("1452" in out or "foreign key" in out.lower())
    assert "row(s) brought back" not in out
    assert lab.sql("SELECT COUNT(*) FROM shop.order_items WHERE order_id = 7") == [(0,)]
    assert lab.sql("SELECT COUNT(*) FROM shop.order_items") == before
