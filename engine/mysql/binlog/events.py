"""Binlog events: the frame of one event (header, body, CRC32) and the bodies PITR reads.

Every event is ``header (19 bytes) + body [+ CRC32]``; the header is ``timestamp u32, type u8,
server_id u32, event_size u32, log_pos u32 (where the event ends), flags u16``. The
Format_description event at the start of each file (and of each replication stream) says how
long each kind's post-header is and whether events carry a CRC32 (``binlog_checksum``).

Only what point-in-time recovery needs is decoded here: Format_description, Rotate, GTIDs
(MariaDB's GTID and Gtid_list, MySQL's GTID and Previous_gtids), Query, Xid, Table_map, rows
events (v1/v2, header only: ``rows`` decodes the images), MariaDB's Annotate_rows and MySQL's
Rows_query. Everything else is framed and recognised by its type, never guessed at.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from engine.errors import RunbookError

MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIIIH")
HEADER_LEN = 19

# -- event types (MySQL's, then MariaDB's from 160) ---------------------------------------
QUERY = 2
STOP = 3
ROTATE = 4
INTVAR = 5
RAND = 13
USER_VAR = 14
FORMAT_DESCRIPTION = 15
XID = 16
BEGIN_LOAD_QUERY = 17
EXECUTE_LOAD_QUERY = 18
TABLE_MAP = 19
WRITE_ROWS_V1, UPDATE_ROWS_V1, DELETE_ROWS_V1 = 23, 24, 25
INCIDENT = 26
HEARTBEAT = 27
IGNORABLE = 28
ROWS_QUERY = 29
WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2 = 30, 31, 32
MYSQL_GTID = 33
ANONYMOUS_GTID = 34
PREVIOUS_GTIDS = 35
TRANSACTION_CONTEXT = 36
VIEW_CHANGE = 37
XA_PREPARE = 38
PARTIAL_UPDATE_ROWS = 39
TRANSACTION_PAYLOAD = 40
HEARTBEAT_V2 = 41
ANNOTATE_ROWS = 160
BINLOG_CHECKPOINT = 161
MARIA_GTID = 162
GTID_LIST = 163
START_ENCRYPTION = 164
QUERY_COMPRESSED = 165
ROWS_COMPRESSED = frozenset(range(166, 172))

WRITE = "insert"
UPDATE = "update"
DELETE = "delete"
ROWS_KIND = {WRITE_ROWS_V1: WRITE, UPDATE_ROWS_V1: UPDATE, DELETE_ROWS_V1: DELETE,
             WRITE_ROWS_V2: WRITE, UPDATE_ROWS_V2: UPDATE, DELETE_ROWS_V2: DELETE}
ROWS_TYPE = {(1, WRITE): WRITE_ROWS_V1, (1, UPDATE): UPDATE_ROWS_V1, (1, DELETE): DELETE_ROWS_V1,
             (2, WRITE): WRITE_ROWS_V2, (2, UPDATE): UPDATE_ROWS_V2, (2, DELETE): DELETE_ROWS_V2}

#: events a reader must refuse rather than pass over: what they hold cannot be replayed here
REFUSED = {
    START_ENCRYPTION: "encrypted binlogs (encrypt_binlog=ON): decrypt them with mariadb-binlog first",
    QUERY_COMPRESSED: "compressed binlog events (log_bin_compress=ON)",
    TRANSACTION_PAYLOAD: "compressed transactions (binlog_transaction_compression=ON)",
    PARTIAL_UPDATE_ROWS: "partial JSON updates (binlog_row_value_options=PARTIAL_JSON)",
    **{t: "compressed binlog events (log_bin_compress=ON)" for t in ROWS_COMPRESSED},
}

# -- flags ------------------------------------------------------------------------------
IN_USE_F = 0x01  # header flag of a file's FDE: the server has the file open (not closed cleanly)
ARTIFICIAL_F = 0x20  # header flag: an event the server made up for the stream (fake Rotate)
STMT_END_F = 0x01  # rows event flag: the last rows event of its statement
CHECKSUM_NONE, CHECKSUM_CRC32 = 0, 1
MARIA_FL_STANDALONE = 0x01  # MariaDB GTID flag: no BEGIN/COMMIT around (DDL)
MARIA_FL_GROUP_COMMIT_ID = 0x02
MARIA_FL_PREPARED_XA = 0x40
MARIA_FL_COMPLETED_XA = 0x80


class BinlogError(RunbookError):
    """A binlog that cannot be read: not a binlog, truncated, corrupt (CRC), or holding
    something this reader refuses to replay."""


@dataclass(slots=True)
class Event:
    """One event as logged. ``pos`` is its offset in ``file`` (None for an artificial event
    of a replication stream); ``data`` the whole event, header to checksum."""

    file: str
    pos: int | None
    data: bytes
    type: int
    timestamp: int
    server_id: int
    size: int
    log_pos: int
    flags: int

    @property
    def end_pos(self) -> int | None:
        return None if self.pos is None else self.pos + self.size


def frame(data: bytes, file: str, pos: int | None) -> Event:
    """The header of ``data`` (one whole event) read into an :class:`Event`."""
    if len(data) < HEADER_LEN:
        raise BinlogError(f"{file}:{pos}: a truncated event ({len(data)} bytes)")
    ts, typ, sid, size, log_pos, flags = HEADER.unpack_from(data)
    if size != len(data):
        raise BinlogError(f"{file}:{pos}: the event says it is {size} bytes, {len(data)} were read")
    return Event(file, pos, data, typ, ts, sid, size, log_pos, flags)


@dataclass
class FormatDescription:
    """What the Format_description event says about the events after it."""

    binlog_version: int
    server_version: str
    header_len: int
    post_header: bytes  # post-header length by event type - 1
    checksum: int  # CHECKSUM_NONE | CHECKSUM_CRC32
    raw: bytes = b""  # the event itself (a BINLOG statement starts with it)
    tail: int = field(init=False)  # bytes of checksum at the end of every event

    def __post_init__(self) -> None:
        self.tail = 4 if self.checksum == CHECKSUM_CRC32 else 0

    @property
    def flavor(self) -> str:
        return "mariadb" if "mariadb" in self.server_version.lower() else "mysql"

    def post_header_len(self, typ: int) -> int:
        return self.post_header[typ - 1] if 0 < typ <= len(self.post_header) else 0


def _checksum_aware(version: str) -> bool:
    """Servers from MySQL 5.6.1 and MariaDB 5.3 write the checksum byte in the FDE."""
    if "mariadb" in version.lower():
        return True
    nums = []
    for part in version.split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits or 0))
    return tuple(nums) >= (5, 6, 1)


def parse_fde(ev: Event) -> FormatDescription:
    d = ev.data
    body = d[HEADER_LEN:]
    version = body[2:52].split(b"\0", 1)[0].decode("ascii", "replace")
    header_len = body[56]
    if _checksum_aware(version):
        alg = d[-5]
        post = body[57:-5]
        fde = FormatDescription(struct.unpack_from("<H", body)[0], version, header_len, bytes(post), alg, d)
        if alg == CHECKSUM_CRC32:
            verify(ev, 4)
        return fde
    return FormatDescription(struct.unpack_from("<H", body)[0], version, header_len, bytes(body[57:]), CHECKSUM_NONE, d)


def verify(ev: Event, tail: int) -> None:
    """The event's CRC32 (when the binlog has them) matches its bytes."""
    if not tail:
        return
    data = ev.data
    if ev.type == FORMAT_DESCRIPTION and ev.flags & IN_USE_F:
        # the server sets "in use" in the open file's FDE after computing its CRC (and clears it at close)
        data = data[:17] + bytes([data[17] & ~IN_USE_F & 0xFF]) + data[18:]
    if zlib.crc32(memoryview(data)[:-4]) != int.from_bytes(data[-4:], "little"):
        raise BinlogError(f"{ev.file}:{ev.pos}: checksum mismatch (CRC32) in a {type_name(ev.type)} event: the binlog is corrupt",
                          hint="read the file again from where it came from; mariadb-binlog --verify-binlog-checksum says the same")


def body(ev: Event, fde: FormatDescription) -> bytes:
    """The event without its header and checksum."""
    return ev.data[HEADER_LEN:len(ev.data) - fde.tail] if fde.tail else ev.data[HEADER_LEN:]


def rebuild(ev: Event, new_body: bytes, fde: FormatDescription, *, typ: int | None = None) -> bytes:
    """The event with another body (and type): its size, and its CRC32 when the binlog has them."""
    typ = ev.type if typ is None else typ
    size = HEADER_LEN + len(new_body) + fde.tail
    head = HEADER.pack(ev.timestamp, typ, ev.server_id, size, ev.log_pos, ev.flags)
    out = head + new_body
    if fde.tail:
        out += zlib.crc32(out).to_bytes(4, "little")
    return out


# -- small bodies -------------------------------------------------------------------------
def rotate_target(ev: Event, fde: FormatDescription) -> tuple[str, int]:
    b = body(ev, fde)
    return b[8:].decode("utf-8", "replace"), struct.unpack_from("<Q", b)[0]


@dataclass(frozen=True)
class Gtid:
    """A transaction's GTID: MariaDB ``domain-server-seq`` or MySQL ``uuid:gno``."""

    text: str
    domain: int = 0  # MariaDB
    server_id: int = 0
    seq: int = 0
    standalone: bool = False  # MariaDB: a DDL (no BEGIN/COMMIT)
    xa: bool = False


def parse_maria_gtid(ev: Event, fde: FormatDescription) -> Gtid:
    b = body(ev, fde)
    seq, domain, flags = struct.unpack_from("<QIB", b)
    return Gtid(f"{domain}-{ev.server_id}-{seq}", domain, ev.server_id, seq, bool(flags & MARIA_FL_STANDALONE),
                bool(flags & (MARIA_FL_PREPARED_XA | MARIA_FL_COMPLETED_XA)))


def parse_mysql_gtid(ev: Event, fde: FormatDescription) -> Gtid:
    b = body(ev, fde)
    sid = b[1:17].hex()
    uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
    gno = struct.unpack_from("<q", b, 17)[0]
    return Gtid(f"{uuid}:{gno}", seq=gno)


def parse_gtid_list(ev: Event, fde: FormatDescription) -> list[tuple[int, int, int]]:
    """MariaDB's Gtid_list: the last (domain, server_id, seq) of each domain/server before this file."""
    b = body(ev, fde)
    count = struct.unpack_from("<I", b)[0] & 0x0FFFFFFF
    return [struct.unpack_from("<IIQ", b, 4 + 16 * i) for i in range(count)]


def parse_previous_gtids(ev: Event, fde: FormatDescription) -> str:
    """MySQL's Previous_gtids as a GTID set text (``uuid:1-5:7-9,uuid2:1-3``)."""
    b = body(ev, fde)
    n = struct.unpack_from("<Q", b)[0]
    off, parts = 8, []
    for _ in range(n):
        sid = b[off:off + 16].hex()
        off += 16
        k = struct.unpack_from("<Q", b, off)[0]
        off += 8
        ivs = []
        for _ in range(k):
            lo, hi = struct.unpack_from("<qq", b, off)
            off += 16
            ivs.append(f"{lo}" if hi - 1 == lo else f"{lo}-{hi - 1}")
        parts.append(f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}:" + ":".join(ivs))
    return ",".join(parts)


@dataclass(frozen=True)
class Query:
    """A Query event: a statement (BEGIN, COMMIT, DDL, statement-based DML) and its default schema."""

    schema: str
    text: str
    error_code: int

    @property
    def verb(self) -> str:
        from engine.mysql.sqlutil import first_keyword

        return first_keyword(self.text)


def parse_query(ev: Event, fde: FormatDescription) -> Query:
    b = body(ev, fde)
    db_len = b[8]
    err, status_len = struct.unpack_from("<HH", b, 9)
    ph = fde.post_header_len(QUERY) or 13
    off = ph + status_len
    schema = b[off:off + db_len].decode("utf-8", "replace")
    text = b[off + db_len + 1:].decode("utf-8", "replace")
    return Query(schema, text, err)


def parse_xid(ev: Event, fde: FormatDescription) -> int:
    return int(struct.unpack_from("<Q", body(ev, fde))[0])


def parse_annotate(ev: Event, fde: FormatDescription) -> str:
    """MariaDB's Annotate_rows (the statement text), or MySQL's Rows_query (a length byte first)."""
    b = body(ev, fde)
    if ev.type == ROWS_QUERY:
        b = b[1:]
    return b.decode("utf-8", "replace")


def type_name(typ: int) -> str:
    names = {QUERY: "Query", ROTATE: "Rotate", FORMAT_DESCRIPTION: "Format_description", XID: "Xid", TABLE_MAP: "Table_map",
             WRITE_ROWS_V1: "Write_rows_v1", UPDATE_ROWS_V1: "Update_rows_v1", DELETE_ROWS_V1: "Delete_rows_v1",
             WRITE_ROWS_V2: "Write_rows", UPDATE_ROWS_V2: "Update_rows", DELETE_ROWS_V2: "Delete_rows", INCIDENT: "Incident",
             ROWS_QUERY: "Rows_query", MYSQL_GTID: "Gtid", ANONYMOUS_GTID: "Anonymous_Gtid", PREVIOUS_GTIDS: "Previous_gtids",
             ANNOTATE_ROWS: "Annotate_rows", BINLOG_CHECKPOINT: "Binlog_checkpoint", MARIA_GTID: "Gtid", GTID_LIST: "Gtid_list",
             START_ENCRYPTION: "Start_encryption", INTVAR: "Intvar", RAND: "Rand", USER_VAR: "User_var", STOP: "Stop",
             XA_PREPARE: "XA_prepare", TRANSACTION_PAYLOAD: "Transaction_payload", HEARTBEAT: "Heartbeat"}
    return names.get(typ, f"type {typ}")
