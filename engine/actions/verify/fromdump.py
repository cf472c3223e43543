"""``row_counts: {from_dump: PATH}``: the rows a backup holds, read without writing anything.

Before a restore the operator needs "rows now vs the backup's" (the damage report of the
emergency SOP's assess stage). The dump is brought over the host's connection exactly as
``restore`` brings it (``engine.mysql.dump.source.fetch_dump``: SFTP for an ssh host, gunzip to
a temporary file) and scanned once (``scan_dump``: the same whole-file check, so a truncated
backup is found here, in assess, not in the middle of the restore)::

    - name: Damage report
      verify:
        schema: shop
        tables: [users, orders]
        row_counts: {from_dump: /backups/shop.sql.gz}
"""

from __future__ import annotations

from typing import Any

from engine.errors import ActionError, RunbookError
from engine.mysql.dump.source import fetch_dump


def dump_row_counts(path: str, schema: str, *, shell: Any | None) -> dict[str, int]:
    """Rows per table of the dump at ``path`` (one schema's tables when it holds several)."""
    from engine.mysql.dump import scan_dump

    try:
        dump = fetch_dump(path, shell=shell)
    except RunbookError as exc:
        raise ActionError(f"row_counts.from_dump: {exc.message}", hint=exc.hint) from None
    try:
        scan = scan_dump(dump.path, tables=None)
    except RunbookError as exc:
        raise ActionError(f"row_counts.from_dump: cannot read {path}: {exc.message}",
                          hint=exc.hint or "check the backup file") from None
    finally:
        dump.close()
    counts: dict[str, int] = {}
    several = len(scan.databases) > 1
    for key, t in scan.tables.items():
        if t.is_view or t.is_sequence:
            continue
        if several and t.schema not in (None, schema):
            continue
        counts[t.name if several else key] = t.rows
    if several and not counts:
        raise ActionError(f"row_counts.from_dump: {path} holds schemas {', '.join(scan.databases)}, not {schema}",
                          hint="verify the schema the dump holds, or give row counts explicitly")
    return counts
