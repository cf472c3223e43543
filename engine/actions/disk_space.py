"""``disk_space``: is there room on the host for what comes next (a restore, a snapshot)?

Space is the one thing no peer tool checks (see the anchors' feature matrix), and running out
mid-restore (ERROR 1114, or a server stuck on a full disk) is worse than not starting. Free
bytes come from ``df -PB1`` over the host's own shell (SSH, or local), never from the control
machine's filesystem.

**The InnoDB factor.** A logical dump loaded into InnoDB takes more room than its SQL text
(page fill, secondary indexes, row headers). Measured on this project's machine (MariaDB
10.11.19, 16 KiB pages, DYNAMIC rows, file-per-table): ``employees-10k.sql.gz`` (5,662,204
bytes of SQL, 130,783 rows) loaded with ``zcat | mysql``, then ``ANALYZE TABLE`` on its six
tables, gives ``SUM(DATA_LENGTH + INDEX_LENGTH)`` = 6,553,600 bytes: **1.157**; the same data
dumped with ``mariadb-dump`` (5,664,195 bytes) and reloaded gives 6,455,296: 1.140. We use
:data:`INNODB_FACTOR` = 1.16. At full size (the same data scaled x30 by ``bench/snapshot_speed.py``,
3.9M rows, a 179,935,911-byte ``mariadb-dump`` reloaded with the ``mariadb`` client) data+index
is 153,960,448 bytes (0.86) and the ``.ibd`` files 186,875,904 bytes (1.04): small tables pay a
fixed per-index page and extent overhead, big ones pack tighter but pre-allocate extents. 1.16
covers the on-disk footprint at both ends; the margin covers the rest.

**Uncompressed size of a dump.** On a local host the dump reader's sizing pass
(:func:`engine.mysql.dump.reader.measure_dump`, the module ``restore`` loads with) measures it:
a file that is not a dump is refused, a ``.gz`` (found by its magic bytes, not its name) is
decompressed without tokenizing (exact at any size, ~110 MB/s of SQL, CRC and truncation
checked), a plain file is its size. On a remote host the file stays where it is (reading a
multi-GB dump over SSH to size it would cost more than the check is worth): ``gzip -l``
reads the ISIZE trailer, which is the size modulo 4 GiB: wrong for any real dump. We stream
``gzip -dc | wc -c`` (exact) on the host when the file is at most :data:`STREAM_LIMIT`
compressed (a second or two); above it we read ISIZE ourselves and add the multiple of 4 GiB
that brings the ratio closest to :data:`TYPICAL_GZIP_RATIO` (4.9 measured on employees-10k;
mysqldump output compresses 4-8x). ``gzip -l`` is only a fallback when ``tail``/``od`` are
missing. The method used is registered (``estimate``).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.actions.base import Action, register
from engine.actions.guard import as_bool, global_variables
from engine.errors import ActionError
from engine.model import Status, StepResult
from engine.language.sizes import PERCENT_SCHEMA, SIZE_SCHEMA, format_percent, format_size, parse_percent, parse_size
from engine.mysql.sqlutil import quote_ident
from engine.transport.base import Shell, Sql

INNODB_FACTOR = 1.16
TYPICAL_GZIP_RATIO = 5.0
STREAM_LIMIT = 64 * 1024**2
GZIP_WRAP = 2**32
DEFAULT_MARGIN = "10%"


@dataclass(frozen=True)
class FreeSpace:
    """``df`` for a path: the filesystem holding it (or its nearest existing parent)."""

    path: str
    checked_path: str  # the nearest existing parent when ``path`` does not exist yet
    filesystem: str
    mount: str
    total_bytes: int
    free_bytes: int


def parse_df(text: str) -> tuple[str, int, int, str]:
    """(filesystem, total, available, mount) from ``df -P`` output, in its block units.

    Robust to a filesystem name or mount point with spaces, and to a line wrapped in two: the
    capacity column (``22%`` or ``-``) anchors the parse from the right.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith("Filesystem")]
    tokens = " ".join(body).split()
    for i in range(len(tokens) - 1, 2, -1):
        if re.fullmatch(r"\d+%|-", tokens[i]) and all(t.isdigit() for t in tokens[i - 3:i]):
            return " ".join(tokens[: i - 3]), int(tokens[i - 3]), int(tokens[i - 1]), " ".join(tokens[i + 1:])
    raise ActionError(f"cannot parse df output: {text.strip()[:200]!r}")


def free_space(shell: Shell, path: str) -> FreeSpace:
    """Free bytes on the filesystem of ``path`` on the host, walking up to an existing parent."""
    q = shlex.quote(path)
    # A restore target may not exist yet (a new datadir, a dump directory): its parent's
    # filesystem is where the bytes will go.
    walk = f'p={q}; while [ ! -e "$p" ]; do q=$(dirname -- "$p"); [ "$q" = "$p" ] && break; p=$q; done; printf "%s\\n" "$p"; '
    res = shell.run(walk + 'df -PB1 -- "$p" 2>/dev/null || { echo KIB; df -Pk -- "$p"; }')
    if res.rc != 0:
        raise ActionError(f"df failed for {path}: {(res.stderr or res.stdout).strip()[:300]}",
                          hint="is the path right, and is df installed on the host?")
    first, _, rest = res.stdout.partition("\n")
    unit = 1
    if rest.startswith("KIB\n"):  # BSD/busybox df without -B: 1024-byte blocks
        unit, rest = 1024, rest[4:]
    fs, total, avail, mount = parse_df(rest)
    return FreeSpace(path=path, checked_path=first.strip() or path, filesystem=fs, mount=mount,
                     total_bytes=total * unit, free_bytes=avail * unit)


def pick_wrap(isize: int, compressed: int, ratio: float = TYPICAL_GZIP_RATIO) -> int:
    """The uncompressed size ``isize + k * 4 GiB`` closest (in ratio) to ``compressed * ratio``."""
    target = max(compressed * ratio, 1.0)
    best, best_err = isize, math.inf
    for k in range(int(compressed * 1032 // GZIP_WRAP) + 2):  # deflate caps at ~1032:1
        candidate = isize + k * GZIP_WRAP
        if candidate == 0:
            continue
        err = abs(math.log(candidate / target))
        if err < best_err:
            best, best_err = candidate, err
    return best


def dump_size(shell: Shell, path: str, *, local: bool = False) -> tuple[int, int, str]:
    """(uncompressed SQL bytes, file bytes, estimate method) of a dump file on the host
    (``local``: the host is this machine, so the dump reader measures it in-process)."""
    if local:
        from engine.mysql.dump import DumpError, measure_dump  # the dump reader: imported when a dump is measured

        try:
            measured = measure_dump(path)
        except DumpError as exc:
            if not isinstance(exc.__cause__, PermissionError):
                raise
            # readable only through the host's shell (become): measure it there
        else:
            how = "decompressed by the dump reader (exact)" if measured.gzip else "file size (plain SQL, exact)"
            return measured.total_bytes, measured.compressed_bytes, how
    q = shlex.quote(path)
    res = shell.run(f"wc -c < {q}")
    if res.rc != 0:
        raise ActionError(f"cannot read the dump {path} on the host: {res.stderr.strip()[:200]}",
                          hint="check need_for_restore: the file must exist on the host, not the control machine")
    compressed = int(res.stdout.split()[0])
    low = path.lower()
    if low.endswith((".xz", ".zst", ".bz2", ".lz4", ".zip")):
        raise ActionError(f"cannot estimate the uncompressed size of {path}", hint="give need: SIZE instead")
    if not low.endswith((".gz", ".gzip", ".tgz")):
        return compressed, compressed, "file size"
    if compressed <= STREAM_LIMIT:
        res = shell.run(f"gzip -dc -- {q} | wc -c")
        if res.rc == 0:
            return int(res.stdout.split()[0]), compressed, "gzip -dc | wc -c (exact)"
    res = shell.run(f"tail -c 4 -- {q} | od -An -tu1")
    parts = res.stdout.split()
    if res.rc == 0 and len(parts) == 4:
        isize = sum(int(b) << (8 * i) for i, b in enumerate(parts))  # little-endian
        size = pick_wrap(isize, compressed)
        return size, compressed, f"gzip ISIZE trailer + {size // GZIP_WRAP} x 4 GiB (ratio {size / compressed:.1f})"
    res = shell.run(f"gzip -l -- {q}")
    nums = [t for t in res.stdout.split() if t.isdigit()]
    if res.rc == 0 and len(nums) >= 2:
        size = pick_wrap(int(nums[1]) % GZIP_WRAP, compressed)
        return size, compressed, "gzip -l (fallback) + 4 GiB correction"
    raise ActionError(f"cannot estimate the uncompressed size of {path}: {res.stderr.strip()[:200]}",
                      hint="give need: SIZE instead")


def table_bytes(sql: Sql, schema: str, tables: list[str] | None) -> tuple[int, int, list[str]]:
    """(data bytes, index bytes, missing tables) of ``schema``'s base tables (or the listed ones)."""
    res = sql.query(
        "SELECT TABLE_NAME AS t, DATA_LENGTH AS d, INDEX_LENGTH AS i FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'", [schema])
    sizes = {str(r["t"]): (int(r["d"] or 0), int(r["i"] or 0)) for r in res.rows}
    wanted = list(tables) if tables else sorted(sizes)
    missing = [t for t in wanted if t not in sizes]
    return (sum(sizes[t][0] for t in wanted if t in sizes), sum(sizes[t][1] for t in wanted if t in sizes), missing)


def assess(ctx: Any, args: dict[str, Any]) -> StepResult:
    """The whole check, shared by the ``disk_space`` action and ``snapshot``'s pre-flight."""
    path = str(args["path"])
    margin = parse_percent(args.get("margin", DEFAULT_MARGIN))
    breakdown: list[dict[str, Any]] = []
    notes: list[str] = []
    binlog_growth = 0
    if "need" in args:
        breakdown.append({"what": "need (given)", "bytes": parse_size(args["need"])})
    elif "need_for_restore" in args:
        sql_bytes, file_bytes, how = dump_size(ctx.shell(), str(args["need_for_restore"]),
                                               local=ctx.host.connection == "local")
        breakdown.append({"what": f"restored data: {format_size(sql_bytes)} of SQL x InnoDB factor {INNODB_FACTOR}",
                          "bytes": math.ceil(sql_bytes * INNODB_FACTOR), "sql_bytes": sql_bytes,
                          "file_bytes": file_bytes, "estimate": how})
        binlog_growth = sql_bytes
    else:
        spec = args["need_for_snapshot"]
        dbytes, ibytes, missing = table_bytes(ctx.sql(), spec["schema"], spec.get("tables"))
        if missing:
            # A dropped table is what an incident leaves: nothing to copy, not an error (the
            # snapshot records it as absent). Said, so that a misspelt name is seen.
            notes.append(f"no table {', '.join(missing)} in schema {quote_ident(spec['schema'])}: counted as 0 bytes "
                         "(a snapshot records it as absent)")
        breakdown.append({"what": f"snapshot copy of {spec['schema']} (data + index)", "bytes": dbytes + ibytes,
                          "missing_tables": missing})
        binlog_growth = dbytes
    checks: dict[str, int] = {path: sum(b["bytes"] for b in breakdown)}
    if binlog_growth and args.get("binlog", True):
        v = global_variables(ctx.sql(), ["log_bin", "log_bin_basename", "datadir"])
        if as_bool(v["log_bin"]):
            bdir = os.path.dirname(v["log_bin_basename"] or "") or (v["datadir"] or path)
            breakdown.append({"what": f"binary log growth at {bdir}", "bytes": binlog_growth})
            checks[bdir] = checks.get(bdir, 0) + binlog_growth
    per_fs: dict[tuple[str, str], dict[str, Any]] = {}
    first: FreeSpace | None = None
    for p, need in checks.items():
        fs = free_space(ctx.shell(), p)
        first = first or fs
        if fs.checked_path.rstrip("/") != p.rstrip("/"):
            notes.append(f"{p} does not exist; checked its nearest existing parent {fs.checked_path}")
        entry = per_fs.setdefault((fs.filesystem, fs.mount), {"path": p, "mount": fs.mount, "free_bytes": fs.free_bytes, "need_bytes": 0})
        entry["need_bytes"] += need  # binlogs on the datadir's filesystem add up with the data
    assert first is not None
    fails = []
    for e in per_fs.values():
        e["need_with_margin_bytes"] = math.ceil(e["need_bytes"] * (1 + margin))
        e["ok"] = e["free_bytes"] >= e["need_with_margin_bytes"]
        if not e["ok"]:
            fails.append(
                f"need {format_size(e['need_bytes'])} (+{format_percent(margin)} margin) at {e['path']} on {ctx.host.name}, "
                f"free {format_size(e['free_bytes'])}: free at least "
                f"{format_size(e['need_with_margin_bytes'] - e['free_bytes'])} on the filesystem of {e['path']}")
    main = per_fs[(first.filesystem, first.mount)]
    data = {
        "path": path, "checked_path": first.checked_path, "filesystem": first.filesystem, "mount": first.mount,
        "free_bytes": main["free_bytes"], "need_bytes": main["need_bytes"], "margin": margin,
        "need_with_margin_bytes": main["need_with_margin_bytes"], "ok": not fails,
        "breakdown": breakdown, "filesystems": list(per_fs.values()), "notes": notes,
    }
    if fails:
        return StepResult(Status.FAILED, msg="; ".join(fails), data=data, warnings=notes)
    msg = (f"{format_size(main['free_bytes'])} free at {path}, need {format_size(main['need_bytes'])}"
           f" +{format_percent(margin)} = {format_size(main['need_with_margin_bytes'])}")
    return StepResult(Status.OK, msg=msg, data=data, warnings=notes)


@register
class DiskSpace(Action):
    """Fail early when the host lacks room (read-only; runs in check mode too).

    ```yaml
    - name: Room to restore
      disk_space:
        path: "{{ facts.datadir }}"
        need_for_restore: /backups/shop.sql.gz   # or need: 20G, or need_for_snapshot: {...}
        margin: 20%
    - disk_space:
        path: /var/lib/mysql
        need_for_snapshot: {schema: shop, tables: [users, orders]}
    ```

    Registers ``free_bytes``, ``need_bytes`` (without margin), ``margin`` (a fraction),
    ``need_with_margin_bytes``, ``ok``, ``path``, ``checked_path``, ``mount``, ``breakdown``
    (what the need is made of), ``filesystems`` (one entry per filesystem checked: binlogs
    elsewhere are checked on their own) and ``notes``.
    """

    name = "disk_space"
    mutating = False
    idempotent = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "description": "path, and exactly one of need, need_for_restore, need_for_snapshot",
        "properties": {
            "path": {"type": "string", "minLength": 1,
                     "description": "a path on the host (e.g. the datadir); a missing path is checked at its nearest existing parent"},
            "need": dict(SIZE_SCHEMA, description="bytes needed, as a size (20G, 512M, 1.5T) or an integer"),
            "need_for_restore": {"type": "string", "minLength": 1,
                                 "description": "a dump file on the host (.sql or .sql.gz): need = its SQL size x the InnoDB factor (+ binlog growth)"},
            "need_for_snapshot": {
                "type": "object", "additionalProperties": False, "required": ["schema"],
                "description": "need = data + index of these tables (+ binlog growth)",
                "properties": {
                    "schema": {"type": "string", "minLength": 1, "description": "the schema to snapshot"},
                    "tables": {"type": "array", "items": {"type": "string", "minLength": 1},
                               "description": "tables to snapshot (default: every base table of the schema)"},
                },
            },
            "margin": dict(PERCENT_SCHEMA, description="extra room on top of the need (default 10%)"),
            "binlog": {"type": "boolean",
                       "description": "count binary log growth when log_bin is on (default true); false when the work runs with sql_log_bin=0"},
        },
    }

    _NEEDS = ("need", "need_for_restore", "need_for_snapshot")

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        if not isinstance(args, dict):
            return []
        given = [k for k in cls._NEEDS if k in args]
        if len(given) != 1:
            return [("", f"give exactly one of need, need_for_restore, need_for_snapshot (got {', '.join(given) or 'none'})")]
        if isinstance(args.get("need"), str) and "{{" not in args["need"]:
            try:
                parse_size(args["need"])  # the schema's pattern cannot say "more than 8 EiB"
            except ValueError as exc:
                return [("need", str(exc))]
        return []

    def apply(self) -> StepResult:
        problems = self.static_problems(self.args or {})
        if problems:
            raise ActionError(problems[0][1])
        return assess(self.ctx, dict(self.args or {}))
