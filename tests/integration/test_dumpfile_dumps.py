"""The dump reader on real ``mariadb-dump`` output: every common option set, plain and gzip.

A source schema with awkward values (quotes, backslashes, newlines, NUL bytes, emoji, binary,
JSON, spatial, generated columns, ENUM/SET, DECIMAL extremes, NULLs), a table without a primary
key, an FK cycle, a self-reference, a CASCADE child with a trigger, a view, routines and an
event is dumped with each option set; the reader's classification and row counts must match
the server, and replaying its statements into a fresh schema must give identical
``CHECKSUM TABLE`` results (and a trigger that did not fire during the load).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.datasets import DATASETS
from engine.mysql.dump import DumpError, DumpReader, Kind, Statement, count_rows, iter_rows, scan_dump
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, mysql_root

pytestmark = pytest.mark.integration

BASE_TABLES = ["awkward", "no_pk", "cyc_a", "cyc_b", "emp", "parent", "child", "audit"]

SCHEMA_SQL = r"""
CREATE TABLE awkward (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  s VARCHAR(255) CHARACTER SET utf8mb4 NULL,
  txt TEXT NULL,
  bin VARBINARY(300) NULL,
  blb BLOB NULL,
  j JSON NULL,
  g GEOMETRY NULL,
  gen_v INT AS (id * 2) VIRTUAL,
  gen_s VARCHAR(300) AS (CONCAT('<', s, '>')) STORED,
  e ENUM('a', 'b''c', 'd,e', '') NULL,
  st SET('x', 'y', 'z') NULL,
  d DECIMAL(65,30) NULL,
  d2 DECIMAL(10,2) NULL,
  f DOUBLE NULL,
  bt BIT(5) NULL,
  dt DATETIME(6) NULL,
  ts TIMESTAMP NULL DEFAULT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE no_pk (a INT NULL, b VARCHAR(20) NULL) ENGINE=InnoDB;
CREATE TABLE cyc_a (id INT PRIMARY KEY, b_id INT NULL) ENGINE=InnoDB;
CREATE TABLE cyc_b (id INT PRIMARY KEY, a_id INT NULL, CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES cyc_a (id)) ENGINE=InnoDB;
ALTER TABLE cyc_a ADD CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES cyc_b (id);
CREATE TABLE emp (id INT PRIMARY KEY, boss_id INT NULL, name VARCHAR(30),
  CONSTRAINT fk_boss FOREIGN KEY (boss_id) REFERENCES emp (id)) ENGINE=InnoDB;
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(30)) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY, pid INT NOT NULL, note VARCHAR(50),
  CONSTRAINT fk_child_parent FOREIGN KEY (pid) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, child_id INT, what VARCHAR(40)) ENGINE=InnoDB;
CREATE TRIGGER child_ai AFTER INSERT ON child FOR EACH ROW INSERT INTO audit (child_id, what) VALUES (NEW.id, 'insert; ;; */ -- x');
CREATE VIEW v_child AS SELECT c.id, c.note, p.name FROM child c JOIN parent p ON p.id = c.pid;
CREATE PROCEDURE p_count(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM child; SELECT ';;' INTO @x; END;
CREATE FUNCTION f_semi() RETURNS VARCHAR(20) DETERMINISTIC RETURN 'a;b;;c\'d';
CREATE EVENT ev_cleanup ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0;
CREATE SEQUENCE seq START WITH 100 INCREMENT BY 5;
"""

AWKWARD_STRINGS = [
    "plain", "it's", 'say "hi"', "back\\slash", "\\'", "''", "a;b", "a;;b", "/* not a comment */", "-- dash", "# hash",
    "line\nbreak", "cr\rlf\r\n", "tab\there", "nul\x00byte", "ctrl-z\x1a", "emoji 😀🎉", "日本語", "DELIMITER ;;",
    "),(", "'),\n('", "*/;", "", " ", "x'41'", "0x41", "_binary 'a'", "b'1'", "NULL",
]


def _connect(db: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, database=db,
                           autocommit=True, charset="utf8mb4")


def _fill(cur: pymysql.cursors.Cursor) -> None:
    rows = []
    for i in range(400):
        s = AWKWARD_STRINGS[i % len(AWKWARD_STRINGS)] + ("" if i < len(AWKWARD_STRINGS) else f" #{i}")
        rows.append((
            s if i % 17 else None,
            (s * 3) if i % 5 else None,
            bytes((i + k) % 256 for k in range(i % 40)) if i % 7 else None,
            bytes(range(256)) * (1 + i % 3) if i % 3 == 0 else (b"\x00'\\\n;" if i % 3 == 1 else None),
            json.dumps({"k": str(i), "n": [1, 2.5, None], "q": '"x"', "u": "é😀"}) if i % 4 else None,
            f"POINT({i} {-i / 3})" if i % 6 == 0 else ("POLYGON((0 0,1 0,1 1,0 0))" if i % 6 == 1 else None),
            ["a", "b'c", "d,e", "", None][i % 5],
            ["x", "x,z", "", None, "y,z"][i % 5],
            ["99999999999999999999999999999999999.999999999999999999999999999999",
             "-99999999999999999999999999999999999.999999999999999999999999999999", "0.000000000000000000000000000001",
             "0", None][i % 5],
            ["12345678.90", "-0.01", None][i % 3],
            [1.7976931348623157e308, -2.2250738585072014e-308, 0.1, None][i % 4],
            [0, 31, 5, None][i % 4],
            "2024-02-29 23:59:59.999999" if i % 2 else None,
            f"2021-03-28 0{i % 4}:30:00" if i % 3 else None,
        ))
    cur.executemany(
        "INSERT INTO awkward (s, txt, bin, blb, j, g, e, st, d, d2, f, bt, dt, ts) VALUES"
        " (%s, %s, %s, %s, %s, ST_GeomFromText(%s), %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    cur.executemany("INSERT INTO no_pk VALUES (%s, %s)", [(i % 3, "dup") for i in range(30)] + [(None, None)] * 3)
    cur.execute("SET foreign_key_checks = 0")
    cur.executemany("INSERT INTO cyc_a VALUES (%s, %s)", [(i, (i % 10) + 1) for i in range(1, 51)])
    cur.executemany("INSERT INTO cyc_b VALUES (%s, %s)", [(i, (i % 50) + 1) for i in range(1, 11)])
    cur.execute("SET foreign_key_checks = 1")
    cur.executemany("INSERT INTO emp VALUES (%s, %s, %s)", [(i, None if i == 1 else i // 2, f"e{i}") for i in range(1, 101)])
    cur.executemany("INSERT INTO parent VALUES (%s, %s)", [(i, f"p'{i}") for i in range(1, 21)])
    cur.executemany("INSERT INTO child VALUES (%s, %s, %s)", [(i, i % 20 + 1, f"c;{i}") for i in range(1, 201)])
    cur.execute("DELETE FROM audit WHERE id % 3 = 0")  # the trigger wrote 200 rows; keep a different number
    for _ in range(7):
        cur.execute("SELECT NEXTVAL(seq)")


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    name = f"rbt_src_{uuid.uuid4().hex[:8]}"
    conn = _connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` DEFAULT CHARACTER SET utf8mb4")
        cur.execute(f"USE `{name}`")
        for stmt in _statements(SCHEMA_SQL):
            cur.execute(stmt)
        _fill(cur)
    yield name
    with conn.cursor() as cur:
        cur.execute("SET foreign_key_checks = 0")
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def _statements(sql: str) -> list[str]:
    """The schema script above, one statement per entry (routine bodies hold ';')."""
    out, buf = [], ""
    for line in sql.strip().splitlines():
        buf += line + "\n"
        if line.rstrip().endswith(";") and (not re.match(r"\s*CREATE (PROCEDURE|FUNCTION)", buf) or line.rstrip().endswith("END;")
                                            or "RETURN" in line):
            out.append(buf.strip().rstrip(";"))
            buf = ""
    return out


def _dump(tmp_path: Path, schema: str, options: list[str], name: str = "dump.sql") -> Path:
    path = tmp_path / name
    args = ["mariadb-dump", "-h", MYSQL_HOST, "-P", str(MYSQL_PORT), "-u", MYSQL_USER]
    args += [o for o in options if o != "--databases"]
    args += ["--databases", schema] if "--databases" in options else [schema]
    env = dict(os.environ, MYSQL_PWD=MYSQL_PASSWORD) if MYSQL_PASSWORD else None
    with open(path, "wb") as out:
        subprocess.run(args, stdout=out, check=True, env=env)
    return path


def _counts(db: str, tables: list[str]) -> dict[str, int]:
    conn = _connect(db)
    with conn.cursor() as cur:
        out = {}
        for t in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{t}`")
            out[t] = cur.fetchone()[0]
    conn.close()
    return out


def _checksums(db: str, tables: list[str]) -> dict[str, int]:
    conn = _connect(db)
    with conn.cursor() as cur:
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{db}`.`{t}`" for t in tables) + " EXTENDED")
        out = {row[0].split(".", 1)[1]: row[1] for row in cur.fetchall()}
    conn.close()
    return out


def _sequence(db: str) -> tuple[object, ...]:
    conn = _connect(db)
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM seq")
        row = cur.fetchone()
    conn.close()
    return tuple(row)


def _replay(statements: list[Statement], target: str) -> None:
    """What a serial loader does: everything but SKIP, SCHEMA and OTHER, in file order."""
    conn = _connect(target)
    try:
        with conn.cursor() as cur:
            for st in statements:
                if st.kind in (Kind.SESSION, Kind.TABLE_DDL, Kind.DATA, Kind.POST):
                    cur.execute(st.text)
    finally:
        conn.close()


OPTION_SETS = {
    "default": [],
    "small-batches": ["--net-buffer-length=4096"],
    "skip-extended-insert": ["--skip-extended-insert"],
    "complete-insert": ["--complete-insert"],
    "hex-blob": ["--hex-blob"],
    "insert-ignore": ["--insert-ignore"],
    "replace": ["--replace"],
    "routines-triggers-events": ["--routines", "--triggers", "--events"],
    "single-transaction": ["--single-transaction"],
    "tz-utc": ["--tz-utc"],
    "skip-tz-utc": ["--skip-tz-utc"],
    "databases": ["--databases", "--routines", "--events"],
    "skip-comments": ["--skip-comments", "--routines"],
}


@pytest.mark.parametrize("label", list(OPTION_SETS))
def test_option_set(label: str, source: str, tmp_path: Path) -> None:
    options = OPTION_SETS[label]
    path = _dump(tmp_path, source, options)
    scan = scan_dump(path, require_trailer="--skip-comments" not in options)
    reader = DumpReader(path)
    sts = list(reader.statements())
    assert reader.header.tool == "mariadb-dump" and reader.header.charset == "utf8mb4"

    # classification
    kinds = {st.kind for st in sts}
    assert Kind.OTHER not in kinds, [st.text[:80] for st in sts if st.kind is Kind.OTHER]
    data = [st for st in sts if st.kind is Kind.DATA]
    verbs = {st.verb for st in data}
    assert verbs == {"INSERT IGNORE"} if "--insert-ignore" in options else verbs == {"REPLACE"} if "--replace" in options \
        else verbs == {"INSERT"}
    ddl_tables = {st.table for st in sts if st.kind is Kind.TABLE_DDL}
    assert ddl_tables == {*BASE_TABLES, "seq"} and scan.tables["seq"].is_sequence
    posts = {(st.post_kind, st.name) for st in sts if st.kind is Kind.POST}
    assert ("trigger", "child_ai") in posts and ("view", "v_child") in posts and ("standin_view", "v_child") in posts
    if "--routines" in options:
        assert {("routine", "p_count"), ("routine", "f_semi")} <= posts
    if "--events" in options:
        assert ("event", "ev_cleanup") in posts
    assert scan.triggers == {"child_ai": "child"} and scan.views == ["v_child"] and scan.tables["v_child"].is_view
    if "--databases" in options:
        assert scan.databases == [source] and {st.schema for st in data} == {source}
    if "--complete-insert" in options:
        awk = next(st for st in data if st.table == "awkward")
        # mariadb-dump lists (and writes) generated columns too; the server ignores their values
        assert awk.columns is not None and awk.columns[:2] == ("id", "s") and "gen_v" in awk.columns

    # rows per table = SELECT COUNT(*), statements per table, ordinals
    counts = _counts(source, BASE_TABLES)
    assert {t: scan.tables[t].rows for t in BASE_TABLES} == counts
    for t in BASE_TABLES:
        mine = [st for st in data if st.table == t]
        assert [st.ordinal for st in mine] == list(range(len(mine))) == list(range(scan.tables[t].data_statements))
        assert sum(count_rows(st) for st in mine) == counts[t]
        assert sum(len(list(iter_rows(st))) for st in mine) == counts[t]
        if "--skip-extended-insert" in options:
            assert len(mine) == counts[t]
    # mariadb-dump's output takes the reader's exact fast path (rows counted while splitting)
    assert [st.text[:40] for st in data if st.rows < 0] == []
    if label == "small-batches":
        assert scan.tables["awkward"].data_statements > 5
    assert scan.tables["awkward"].load_data_safe is False  # bit and geometry columns
    assert scan.tables["emp"].load_data_safe is True
    assert scan.tables["child"].create is not None and scan.tables["child"].create.foreign_keys[0].on_delete == "CASCADE"

    # replay into a fresh schema: identical checksums, and the trigger did not fire
    target = f"rbt_dst_{uuid.uuid4().hex[:8]}"
    root = mysql_root()
    try:
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{target}` DEFAULT CHARACTER SET utf8mb4")
        _replay(sts, target)
        assert _checksums(target, BASE_TABLES) == _checksums(source, BASE_TABLES)
        assert _counts(target, ["audit"]) == {"audit": counts["audit"]}
        assert _sequence(target) == _sequence(source)
    finally:
        with root.cursor() as cur:
            cur.execute("SET foreign_key_checks = 0")
            cur.execute(f"DROP DATABASE IF EXISTS `{target}`")
        root.close()

    # the gzip of the same dump reads identically (sizes too)
    gz = tmp_path / "dump.sql.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert [(s.kind, s.text, s.offset, s.length) for s in DumpReader(gz).statements()] == \
        [(s.kind, s.text, s.offset, s.length) for s in sts]
    gscan = scan_dump(gz, require_trailer="--skip-comments" not in options)
    assert gscan.total_bytes == path.stat().st_size == scan.total_bytes and gscan.compressed_bytes == gz.stat().st_size
    assert {t: s.rows for t, s in gscan.tables.items()} == {t: s.rows for t, s in scan.tables.items()}


# ------------------------------------------------------------------------------ refusals


@pytest.fixture(scope="module")
def good_dump(source: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _dump(tmp_path_factory.mktemp("good"), source, ["--net-buffer-length=8192"])


def _refused(data: bytes | Path, tmp_path: Path, match: str, **kw: object) -> str:
    path = data if isinstance(data, Path) else tmp_path / "x"
    if not isinstance(data, Path):
        path.write_bytes(data)
    try:
        scan_dump(path, **kw)  # type: ignore[arg-type]
    except DumpError as exc:
        msg = str(exc)
        assert re.search(match, msg), msg
        assert "\n" not in msg and str(path) in msg
        return msg
    raise AssertionError("not refused")


def test_truncated_gz(good_dump: Path, tmp_path: Path) -> None:
    gz = gzip.compress(good_dump.read_bytes())
    for cut in (len(gz) // 3, len(gz) - 4):
        _refused(gz[:cut], tmp_path, "gzip stream is truncated|ends inside")


def test_flipped_byte_gz(good_dump: Path, tmp_path: Path) -> None:
    gz = bytearray(gzip.compress(good_dump.read_bytes()))
    for where in (len(gz) // 2, len(gz) - 6):  # in the deflate data, in the CRC trailer
        bad = bytearray(gz)
        bad[where] ^= 0x01
        _refused(bytes(bad), tmp_path, "corrupt|truncated|ends inside")


def test_trailer_cut(good_dump: Path, tmp_path: Path) -> None:
    data = good_dump.read_bytes()
    cut = data[:data.rindex(b"-- Dump completed")]
    msg = _refused(cut, tmp_path, "no completion trailer")
    assert scan_dump(tmp_path / "x", require_trailer=False).tables["awkward"].rows == 400
    # cut inside the data: the statement is unterminated
    mid = data.index(b"INSERT INTO `awkward`") + 5000
    _refused(data[:mid], tmp_path, "ends inside|no completion trailer")
    assert "Dump completed" in msg


def test_foreign_files(tmp_path: Path) -> None:
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
           b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
    _refused(png, tmp_path, "not a mysqldump")
    root = Path(__file__).resolve().parents[2]
    _refused(root / "runbooks" / "hello.yml", tmp_path, "not a mysqldump")
    _refused(root / "pyproject.toml", tmp_path, "not a mysqldump")
    _refused(gzip.compress(png), tmp_path, "not a mysqldump")
    _refused(b"\x1f\x8b\x08\x00garbage", tmp_path, "corrupt|truncated")


def test_missing_table(good_dump: Path, tmp_path: Path) -> None:
    msg = _refused(good_dump, tmp_path, r"tables? (childs|nope).*not in the dump", tables=["awkward", "childs", "nope"])
    assert "did you mean 'child'" in msg and "awkward" in msg
    assert scan_dump(good_dump, tables=["child", "v_child"]).tables["child"].rows == 200


# ------------------------------------------------------------------------------ datasets


def _load_dataset(files: list[str], schema: str, orig: str) -> None:
    text = b"".join(gzip.decompress((DATASETS / f).read_bytes()) for f in files)
    text = re.sub(rb"\b(DROP SCHEMA IF EXISTS |CREATE SCHEMA |DATABASE (?:IF (?:NOT )?EXISTS )?|USE )" + orig.encode() + rb";",
                  rb"\g<1>" + schema.encode() + b";", text)
    text = re.sub(rb"\b" + orig.encode() + rb"\.", schema.encode() + b".", text)  # sakila's views name their schema
    env = dict(os.environ, MYSQL_PWD=MYSQL_PASSWORD) if MYSQL_PASSWORD else None
    subprocess.run(["mariadb", "-h", MYSQL_HOST, "-P", str(MYSQL_PORT), "-u", MYSQL_USER], input=text, check=True,
                   stdout=subprocess.DEVNULL, env=env)


SAKILA_ROWS = {"actor": 200, "address": 603, "category": 16, "city": 600, "country": 109, "customer": 599, "film": 1000,
               "film_actor": 5462, "film_category": 1000, "film_text": 1000, "inventory": 4581, "language": 6,
               "payment": 16049, "rental": 16044, "staff": 2, "store": 2}
EMPLOYEES_ROWS = {"departments": 9, "dept_emp": 11051, "dept_manager": 24, "employees": 10000, "salaries": 94917,
                  "titles": 14782}


@pytest.mark.parametrize(("files", "orig", "expected"), [
    (["sakila-schema.sql.gz", "sakila-data.sql.gz"], "sakila", SAKILA_ROWS),
    (["employees-10k.sql.gz"], "employees", EMPLOYEES_ROWS),
])
def test_datasets(files: list[str], orig: str, expected: dict[str, int], tmp_path: Path) -> None:
    # The dataset scripts themselves (not dumps: no trailer, DELIMITER // blocks, /*!50705 0x…*/ values)
    for f in files:
        scan = scan_dump(DATASETS / f, require_trailer=False)
        got = {t: s.rows for t, s in scan.tables.items() if s.rows}
        assert got == {t: n for t, n in expected.items() if t in got}
        assert not scan.has_trailer
    # ... loaded and dumped by mariadb-dump, plain and gzip
    schema = f"rbt_ds_{uuid.uuid4().hex[:8]}"
    try:
        _load_dataset(files, schema, orig)
        path = _dump(tmp_path, schema, ["--routines", "--events"])
        scan = scan_dump(path, tables=list(expected))
        assert {t: scan.tables[t].rows for t in expected} == expected
        gz = tmp_path / "d.sql.gz"
        with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
            dst.write(src.read())
        assert scan_dump(gz).rows == sum(expected.values())
    finally:
        root = mysql_root()
        with root.cursor() as cur:
            cur.execute("SET foreign_key_checks = 0")
            cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        root.close()


# ------------------------------------------------------------------------ disk_space estimate


def test_disk_space_need_for_restore_uses_the_reader(good_dump: Path, tmp_path: Path) -> None:
    from engine.actions.disk_space import INNODB_FACTOR, DiskSpace
    from tests.integration.test_dr_actions import make_ctx, run_step

    sql = good_dump.read_bytes()
    misnamed = tmp_path / "backup.sql"  # gzip data under a .sql name: found by its magic bytes
    misnamed.write_bytes(gzip.compress(sql))
    res = run_step(DiskSpace, {"path": str(tmp_path), "need_for_restore": str(misnamed)}, make_ctx())
    first = res.data["breakdown"][0]
    assert first["sql_bytes"] == len(sql) and first["file_bytes"] == misnamed.stat().st_size
    assert first["estimate"] == "decompressed by the dump reader (exact)"
    assert first["bytes"] == int(-(-len(sql) * INNODB_FACTOR // 1))
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DumpError, match="not a mysqldump"):
        DiskSpace({"path": str(tmp_path), "need_for_restore": str(png)}, make_ctx()).apply()
    bad = tmp_path / "cut.sql.gz"
    bad.write_bytes(misnamed.read_bytes()[:-100])
    with pytest.raises(DumpError, match="truncated"):
        DiskSpace({"path": str(tmp_path), "need_for_restore": str(bad)}, make_ctx()).apply()
