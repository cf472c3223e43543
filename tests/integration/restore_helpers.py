"""Shared helpers of the restore tests: an awkward source schema, dumps made by mariadb-dump,
checksums, and running the restore action in this process or in a child that may be killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


from engine.actions.restore import Restore
from engine.model import StepResult
from tests.cliutil import rows_on, run_script
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, mysql_root
from tests.integration.test_dr_actions import make_ctx, run_step

AWKWARD = r"""
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, note TEXT) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, v VARCHAR(50),
  CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
CREATE TABLE cyc_a (id INT PRIMARY KEY, b_id INT NULL) ENGINE=InnoDB;
CREATE TABLE cyc_b (id INT PRIMARY KEY, a_id INT NULL, CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES cyc_a (id)) ENGINE=InnoDB;
ALTER TABLE cyc_a ADD CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES cyc_b (id);
CREATE TABLE tree (id INT PRIMARY KEY, up INT NULL, CONSTRAINT fk_tree_up FOREIGN KEY (up) REFERENCES tree (id)) ENGINE=InnoDB;
CREATE TABLE nopk (a INT, b VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE odd (
  id INT PRIMARY KEY AUTO_INCREMENT,
  s VARCHAR(200) CHARACTER SET utf8mb4, bin VARBINARY(64), blb BLOB, j JSON,
  g POINT NULL, gen INT AS (id * 2) VIRTUAL, gst VARCHAR(210) AS (CONCAT('x', s)) STORED,
  e ENUM('a','b','c d'), st SET('x','y','z'), d1 DECIMAL(65,30), d2 DECIMAL(5,2), f DOUBLE, bt BIT(5),
  dt DATETIME(6), ts TIMESTAMP NULL, n INT NULL) ENGINE=InnoDB;
CREATE TABLE trigger_log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50)) ENGINE=InnoDB;
INSERT INTO parent VALUES (1, 'quote '' and \\ backslash', 'line1\nline2\r\n\ttab'), (2, 'emoji 😀 ünï', NULL),
  (3, 'nul \0 byte', ''), (4, 'comma, paren ) ( ;', 'semi; -- not a comment /* nor this */');
INSERT INTO child VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, NULL), (4, NULL, 'orphan-free null');
INSERT INTO cyc_a VALUES (1, NULL), (2, NULL);
INSERT INTO cyc_b VALUES (1, 1), (2, 2);
UPDATE cyc_a SET b_id = id;
INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2), (4, 1);
INSERT INTO nopk VALUES (1, 'dup'), (1, 'dup'), (NULL, NULL), (2, 'x');
INSERT INTO odd (s, bin, blb, j, g, e, st, d1, d2, f, bt, dt, ts, n) VALUES
  ('it''s', 0x00FF10275C0A, 0x89504E470D0A1A0A00, '{"k": "v\\"q", "n": [1, 2]}', ST_GeomFromText('POINT(1 2)'),
   'c d', 'x,z', 12345678901234567890123456789012345.123456789012345678901234567890, -999.99, 1.5e300, b'10101',
   '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07', NULL),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('\\N', '', '', '[]', ST_GeomFromText('POINT(-1.5 2e10)'), 'a', '', 0, 0, -0.0, b'0', '1000-01-01 00:00:00', NULL, -2147483648);
CREATE TRIGGER child_log AFTER INSERT ON child FOR EACH ROW INSERT INTO trigger_log (what) VALUES (CONCAT('child ', NEW.id));
CREATE VIEW child_names AS SELECT c.id, p.name FROM child c JOIN parent p ON p.id = c.parent_id;
CREATE PROCEDURE count_children(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM child; END;
CREATE SEQUENCE ticket_no START WITH 100 INCREMENT BY 5;
SELECT NEXTVAL(ticket_no);
"""

BASE_TABLES = ["parent", "child", "cyc_a", "cyc_b", "tree", "nopk", "odd", "trigger_log"]


def execute(schema: str | None, script: str) -> None:
    run_script(script, host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, database=schema)


def query(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return rows_on(mysql_root(), sql, args=params)


def dump(schema: str, path: str, *options: str, tables: list[str] | None = None) -> str:
    """mariadb-dump of ``schema`` into ``path`` (``.gz``: compressed)."""
    cmd = ["mariadb-dump", f"-h{MYSQL_HOST}", f"-P{MYSQL_PORT}", f"-u{MYSQL_USER}", *([f"-p{MYSQL_PASSWORD}"] if MYSQL_PASSWORD else []),
           *[o for o in options if o != "--databases"]]
    cmd += ["--databases", schema] if "--databases" in options else [schema, *(tables or [])]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    if path.endswith(".gz"):
        import gzip

        out = gzip.compress(out)
    with open(path, "wb") as f:
        f.write(out)
    return path


def checksums(schema: str, tables: list[str]) -> dict[str, Any]:
    return {t: query(f"CHECKSUM TABLE `{schema}`.`{t}`")[0][1] for t in tables}


def restore(args: dict[str, Any], *, run_id: str | None = None, step_key: str = "restore/step") -> StepResult:
    ctx = make_ctx(step_key=step_key)
    if run_id:
        ctx.run_id = run_id
    return run_step(Restore, args, ctx)


CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from tests.integration.restore_helpers import restore
r = restore(json.loads({args!r}), run_id={run_id!r})
print(json.dumps({{"status": r.status.value, "msg": r.msg}}))
"""


def restore_in_child(args: dict[str, Any], run_id: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = CHILD.format(root=root, args=json.dumps(args), run_id=run_id)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def progress_rows(run_id: str) -> list[tuple[Any, ...]]:
    return query("SELECT tbl, batch, part, `rows` FROM _runbook.restore_progress WHERE run_id = %s AND batch >= 0"
                 " ORDER BY tbl, batch, part", [run_id])
