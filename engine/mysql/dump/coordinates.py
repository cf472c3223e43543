"""A dump's binlog coordinates: where the server's history stood when the dump was taken.

``mysqldump``/``mariadb-dump --master-data`` (MySQL 8.0.26+: ``--source-data``) write, commented
(``=2``) or not (``=1``), near the top::

    -- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000042', MASTER_LOG_POS=1425;
    -- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000042', SOURCE_LOG_POS=1425;

MariaDB's ``--gtid`` adds ``[-- ]SET GLOBAL gtid_slave_pos='0-1-5';`` (10.11: at the *end* of the
file, "the deferred gtid setting"); MySQL with GTIDs writes
``SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ 'uuid:1-5';`` near the top (the value may span lines).
``--dump-slave`` writes the coordinates of the dumped replica's *source* (its binlogs, not this
server's): marked here so a replay can say so.

Only the head (1 MiB) and tail (64 KiB) of the dump are read, over the host's shell for a
remote host: a gzip file is decompressed on the host as it is read.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

from engine.errors import ActionError
from engine.mysql.binlog.position import BinlogPosition

HEAD = 1 << 20
TAIL = 64 << 10
_FILEPOS = re.compile(rb"CHANGE\s+(?:MASTER|REPLICATION\s+SOURCE)\s+TO\s+(?:\w+\s*=\s*'[^']*'\s*,\s*|\w+\s*=\s*\d+\s*,\s*)*?"
                      rb"(?:MASTER|SOURCE)_LOG_FILE\s*=\s*'([^']+)'\s*,\s*(?:MASTER|SOURCE)_LOG_POS\s*=\s*(\d+)", re.I)
_MARIA_GTID = re.compile(rb"SET\s+GLOBAL\s+gtid_slave_pos\s*=\s*'([^']*)'", re.I)
_MYSQL_GTID = re.compile(rb"SET\s+@@GLOBAL\.GTID_PURGED\s*=\s*(?:/\*!\d+\s*'\+'\s*\*/\s*)?'([^']*)'", re.I)
_OF_SOURCE = re.compile(rb"\((?:the\s+master\s+of\s+this\s+slave|the\s+source\s+of\s+this\s+replica)\)", re.I)
_HINT = ("take the dump with its coordinates: mariadb-dump --single-transaction --master-data=2 --gtid "
         "(MySQL 8.0.26+: mysqldump --single-transaction --source-data=2), or give start: {file, pos} / {gtid}")


@dataclass(frozen=True)
class DumpCoordinates:
    """Where a dump stands in the binlogs, and whose binlogs those are."""

    position: BinlogPosition
    of_source: bool = False  # --dump-slave: the coordinates name the dumped replica's source's binlogs


def parse_coordinates(head: bytes, tail: bytes = b"") -> DumpCoordinates | None:
    """The coordinates in a dump's head and tail, or None when it has none."""
    file = pos = gtid = None
    # Each pattern is searched only where its word is (bytes.lower folds ASCII as re.I does): a
    # case-insensitive search of a 1 MiB head costs ≈ 5 ms a pattern, on the restore's last step.
    low = head.lower()
    m = _FILEPOS.search(head) if b"change" in low else None
    if m:
        file, pos = m.group(1).decode("utf-8", "replace"), int(m.group(2))
    for text, folded in ((head, low), (tail, tail.lower())):
        g = ((_MARIA_GTID.search(text) if b"gtid_slave_pos" in folded else None)
             or (_MYSQL_GTID.search(text) if b"gtid_purged" in folded else None))
        if g and g.group(1).strip():
            gtid = re.sub(r"\s+", "", g.group(1).decode("utf-8", "replace")).lstrip("+")
            break
    if file is None and not gtid:
        return None
    return DumpCoordinates(BinlogPosition(file, pos, gtid), of_source=bool(_OF_SOURCE.search(head)))


def _read(shell: Any, path: str, cmd: str) -> bytes:
    res = shell.run(f"{cmd} | base64", timeout=600)
    if res.rc != 0:
        raise ActionError(f"cannot read the dump {path} on the host: {(res.stderr or res.stdout).strip()[-300:]}",
                          hint="check from_dump: (a path on the host)")
    return base64.b64decode(res.stdout)


def read_coordinates(path: str, shell: Any | None) -> DumpCoordinates:
    """The coordinates of the dump ``path`` (on the host through ``shell``; on this machine
    when ``shell`` is None or local). Refused with the options to add when it has none."""
    from engine.transport.local import LocalShell

    if shell is None or isinstance(shell, LocalShell):
        head, tail = _local(os.path.expanduser(path))
    else:
        q = shlex.quote(path)
        gz = _read(shell, path, f"head -c 2 -- {q}") == b"\x1f\x8b"
        head = _read(shell, path, f"gzip -dc -- {q} 2>/dev/null | head -c {HEAD}" if gz else f"head -c {HEAD} -- {q}")
        tail = b""
        if not (_FILEPOS.search(head) and (_MARIA_GTID.search(head) or _MYSQL_GTID.search(head))):
            tail = _read(shell, path, f"gzip -dc -- {q} | tail -c {TAIL}" if gz else f"tail -c {TAIL} -- {q}")
    found = parse_coordinates(head, tail)
    if found is None:
        raise ActionError(f"the dump {path} holds no binlog coordinates (no CHANGE MASTER TO … MASTER_LOG_POS, no gtid_slave_pos, "
                          "no GTID_PURGED): where the binlogs must start is unknown", hint=_HINT)
    return found


def coordinates_of_file(path: str) -> DumpCoordinates | None:
    """The coordinates of a dump on this machine (plain or gzip), None when it has none."""
    return parse_coordinates(*_local(path))


def _local(path: str) -> tuple[bytes, bytes]:
    import gzip
    import zlib

    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic == b"\x1f\x8b":
            with gzip.open(path, "rb") as g:
                head = g.read(HEAD)
                if _FILEPOS.search(head) and (_MARIA_GTID.search(head) or _MYSQL_GTID.search(head)):
                    return head, b""
                tail = head[-TAIL:]
                while chunk := g.read(1 << 20):
                    tail = (tail + chunk)[-TAIL:]
            return head, tail
        with open(path, "rb") as f:
            head = f.read(HEAD)
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - TAIL))
            return head, f.read()
    except FileNotFoundError:
        raise ActionError(f"no dump file {path}", hint="check from_dump: (a path on the host)") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise ActionError(f"cannot read the dump {path}: {exc}", hint="check from_dump:") from None
