"""How long would crash recovery take if this running server crashed now?

Recovery replays the redo log from the last checkpoint (the checkpoint age, at most the redo
capacity) and then rolls back the transactions that were open. So, after the seed's formula::

    estimated_seconds = checkpoint_age / apply_speed + rows_to_undo / undo_rows_per_s

``checkpoint_age`` = current LSN − checkpoint LSN (``Innodb_checkpoint_age`` on MariaDB,
``SHOW ENGINE INNODB STATUS`` elsewhere); ``apply_speed`` is the speed the server writes data
pages, measured over the sample (``Innodb_data_written``), or a given ``apply_speed``; rows to
undo are the ``trx_rows_modified`` of the open transactions. The redo write rate (LSN sampled
twice) says how fast the checkpoint age can grow. Every input is returned with the figure.
"""

from __future__ import annotations

import re
import time
from typing import Any

from engine.actions.guard import global_status, global_variables
from engine.errors import SqlError
from engine.transport.base import Sql

#: assumed when the server writes too little during the sample to measure anything
DEFAULT_APPLY_SPEED = 100 * 1024 * 1024  # bytes/s: a modest SSD replaying redo
DEFAULT_UNDO_ROWS_PER_S = 50_000
MIN_MEASURABLE = 1024 * 1024  # bytes/s below which the sample says nothing about the disk


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def lsn_now(sql: Sql) -> tuple[int | None, int | None, str]:
    """(LSN, checkpoint LSN, where they came from)."""
    s = global_status(sql, ["Innodb_lsn_current", "Innodb_lsn_last_checkpoint",
                            "Innodb_redo_log_current_lsn", "Innodb_redo_log_checkpoint_lsn"])
    if _int(s["Innodb_lsn_current"]) is not None:
        return _int(s["Innodb_lsn_current"]), _int(s["Innodb_lsn_last_checkpoint"]), "Innodb_lsn_* status"
    if _int(s["Innodb_redo_log_current_lsn"]) is not None:
        return _int(s["Innodb_redo_log_current_lsn"]), _int(s["Innodb_redo_log_checkpoint_lsn"]), "Innodb_redo_log_* status"
    try:
        text = str(next(iter(sql.query("SHOW ENGINE INNODB STATUS").rows[0].values()), ""))
    except (SqlError, IndexError, StopIteration):
        return None, None, "unavailable"
    m1 = re.search(r"Log sequence number\s+(\d+)", text)
    m2 = re.search(r"Last checkpoint at\s+(\d+)", text)
    return (int(m1.group(1)) if m1 else None), (int(m2.group(1)) if m2 else None), "SHOW ENGINE INNODB STATUS"


def redo_capacity(sql: Sql) -> int | None:
    v = global_variables(sql, ["innodb_redo_log_capacity", "innodb_log_file_size", "innodb_log_files_in_group"])
    if _int(v["innodb_redo_log_capacity"]):
        return _int(v["innodb_redo_log_capacity"])
    size = _int(v["innodb_log_file_size"])
    if size is None:
        return None
    return size * (_int(v["innodb_log_files_in_group"]) or 1)


def rows_to_undo(sql: Sql) -> tuple[int, int]:
    """(open transactions, rows they modified): what a crash now would have to roll back."""
    try:
        row = sql.query("SELECT COUNT(*) AS n, COALESCE(SUM(trx_rows_modified), 0) AS rows_ FROM information_schema.INNODB_TRX").rows[0]
    except SqlError:
        return 0, 0
    return int(row["n"] or 0), int(row["rows_"] or 0)


def estimate(sql: Sql, *, sample: float = 2.0, apply_speed: float | None = None,
             undo_rows_per_s: float | None = None) -> dict[str, Any]:
    """The registered result of ``innodb_recovery: {mode: estimate}``."""
    names = ["Innodb_data_written", "Innodb_buffer_pool_pages_dirty", "Innodb_buffer_pool_pages_total",
             "Innodb_checkpoint_age", "Innodb_os_log_written"]
    lsn1, _, source = lsn_now(sql)
    st1 = global_status(sql, names)
    t1 = time.monotonic()
    time.sleep(sample)
    lsn2, ckpt, _ = lsn_now(sql)
    st2 = global_status(sql, names)
    elapsed = max(time.monotonic() - t1, 1e-6)
    page_size = _int(global_variables(sql, ["innodb_page_size"])["innodb_page_size"]) or 16384
    age = _int(st2["Innodb_checkpoint_age"])
    if age is None and lsn2 is not None and ckpt is not None:
        age = lsn2 - ckpt
    redo_rate = (lsn2 - lsn1) / elapsed if lsn1 is not None and lsn2 is not None else None
    w1, w2 = _int(st1["Innodb_data_written"]), _int(st2["Innodb_data_written"])
    measured = (w2 - w1) / elapsed if w1 is not None and w2 is not None else None
    if apply_speed:
        speed, speed_source = float(apply_speed), "apply_speed argument"
    elif measured is not None and measured >= MIN_MEASURABLE:
        speed, speed_source = measured, f"measured: Innodb_data_written over {elapsed:.1f}s"
    else:
        speed = float(DEFAULT_APPLY_SPEED)
        speed_source = (f"assumed {DEFAULT_APPLY_SPEED // (1024 * 1024)} MB/s: the server wrote "
                        f"{(measured or 0) / 1024:.0f} KB/s during the {elapsed:.1f}s sample, too little to measure the disk")
    open_trx, undo_rows = rows_to_undo(sql)
    undo_rate = float(undo_rows_per_s or DEFAULT_UNDO_ROWS_PER_S)
    redo_seconds = (age or 0) / speed
    undo_seconds = undo_rows / undo_rate
    dirty = _int(st2["Innodb_buffer_pool_pages_dirty"])
    total = round(redo_seconds + undo_seconds, 3)
    formula = (f"estimated_seconds = checkpoint_age / apply_speed + rows_to_undo / undo_rows_per_s"
               f" = {age or 0} B / {speed:.0f} B/s + {undo_rows} / {undo_rate:.0f} rows/s"
               f" = {redo_seconds:.2f} s + {undo_seconds:.2f} s = {total:.2f} s")
    return {
        "lsn": lsn2,
        "checkpoint_lsn": ckpt,
        "checkpoint_age": age,
        "lsn_source": source,
        "redo_capacity": redo_capacity(sql),
        "dirty_pages": dirty,
        "dirty_bytes": dirty * page_size if dirty is not None else None,
        "buffer_pool_pages": _int(st2["Innodb_buffer_pool_pages_total"]),
        "redo_write_bytes_per_s": round(redo_rate, 1) if redo_rate is not None else None,
        "data_write_bytes_per_s": round(measured, 1) if measured is not None else None,
        "apply_bytes_per_s": round(speed, 1),
        "apply_speed_source": speed_source,
        "open_transactions": open_trx,
        "rows_to_undo": undo_rows,
        "undo_rows_per_s": undo_rate,
        "undo_rate_source": "undo_rows_per_s argument" if undo_rows_per_s else f"assumed {DEFAULT_UNDO_ROWS_PER_S} rows/s",
        "sample_seconds": round(elapsed, 3),
        "redo_seconds": round(redo_seconds, 3),
        "undo_seconds": round(undo_seconds, 3),
        "estimated_seconds": total,
        "formula": formula,
    }
