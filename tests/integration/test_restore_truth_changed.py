"""A dump read in place (``file_on: control``) that is rewritten between the whole-file check
and the load — the nightly backup writing the next dump to the same path while a restore runs.
Was: the loader re-read the batches by path and sent whatever the file then held (rows of
another backup, statement text the check never saw); only a short read was noticed. Now every
batch's bytes are compared with the check's digest of them before they are sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.actions.restore import loader as loader_mod
from engine.actions.restore.source import DumpSource
from engine.model import Status
from tests.integration.restore_helpers import dump, execute, query, restore
from tests.integration.restore_play import count, src

pytestmark = pytest.mark.integration
__all__ = ["src"]

ROWS = 600


def _source(src: str, tmp_path: Path) -> tuple[str, bytes]:
    execute(src, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;"
                 f"INSERT INTO t SELECT seq, CONCAT('old-', seq) FROM seq_1_to_{ROWS}")
    path = dump(src, str(tmp_path / "t.sql"), "--net-buffer-length=4096")
    data = Path(path).read_bytes()
    assert data.count(b"'old-") == ROWS
    return path, data


def _rewrite(path: str, data: bytes) -> None:
    """In place, as ``mysqldump > path`` does (same inode, truncated, written again)."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()


def _args(path: str, schema: str) -> dict[str, Any]:
    return {"file": path, "schema": schema, "schema_mismatch": "create_missing", "file_on": "control",
            "batch_bytes": 4096, "parallel": 1}


def _after_check(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    checked = DumpSource._checked

    def hooked(self: DumpSource, scan: Any, builder: Any) -> Any:
        out = checked(self, scan, builder)
        change()
        return out

    monkeypatch.setattr(DumpSource, "_checked", hooked)


@pytest.mark.parametrize("grow", [False, True], ids=["same-length", "longer"])
def test_dump_rewritten_after_the_check_is_not_loaded(tmp_path: Path, schema: str, src: str, grow: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = _source(src, tmp_path)
    other = data.replace(b"'old-", b"'new-")
    if grow:  # the next backup has more rows: every row a little longer
        other = data.replace(b"'old-", b"'newer-")
    assert other != data and (len(other) == len(data)) != grow
    _after_check(monkeypatch, lambda: _rewrite(path, other))
    res = restore(_args(path, schema))
    assert res.status is Status.FAILED, res.msg
    assert path in res.msg and "changed since the check" in res.msg, res.msg
    assert "nothing of the changed part was sent" in res.msg, res.msg
    assert "copy" in res.msg and "again" in res.msg, res.msg  # what to do
    assert query(f"SELECT COUNT(*) FROM `{schema}`.t WHERE v NOT LIKE 'old-%%'")[0][0] == 0
    assert count(schema, "t") == 0  # the very first batch already differs: nothing sent
    assert res.data["rows"] == 0


def test_dump_rewritten_mid_load_keeps_and_reports_what_was_committed(tmp_path: Path, schema: str, src: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batches committed before the file changed are real: the result says how many
    rows were loaded, and none of the changed file's rows are among them."""
    path, data = _source(src, tmp_path)
    other = data.replace(b"'old-", b"'new-")
    write = loader_mod.write_batch
    calls = [0]

    def after_first(*a: Any, **kw: Any) -> Any:
        out = write(*a, **kw)
        calls[0] += 1
        if calls[0] == 1:
            _rewrite(path, other)
        return out

    monkeypatch.setattr(loader_mod, "write_batch", after_first)
    res = restore(_args(path, schema))
    assert res.status is Status.FAILED, res.msg
    assert "changed since the check" in res.msg and "table t" in res.msg, res.msg
    loaded = count(schema, "t")
    assert 0 < loaded < ROWS
    assert query(f"SELECT COUNT(*) FROM `{schema}`.t WHERE v NOT LIKE 'old-%%'")[0][0] == 0
    assert res.data["rows"] == loaded, res.data
