"""``LOAD DATA LOCAL`` from memory for the MySQL adapter: the server gets only the payload
registered for the statement, never a file it names."""

from __future__ import annotations

import ssl
import threading
from typing import Any

import pymysql
import pymysql.connections
import pymysql.err

Buffer = bytes | bytearray | memoryview
Payload = Buffer | tuple[Buffer, ...]

_TLS_OPTIONS = ("ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled", "read_default_file")
_preferred_lock = threading.Lock()
_preferred: ssl.SSLContext | None = None


def _preferred_context() -> ssl.SSLContext:
    """The one TLS context of PyMySQL's PREFERRED mode: TLS when the server offers it, its
    certificate not checked (CERT_NONE). PyMySQL makes a new one per connection and loads the
    system's CA bundle into it (~30 ms of CPU, for certificates it never checks)."""
    global _preferred
    with _preferred_lock:
        if _preferred is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            _preferred = ctx
        return _preferred


#: PyMySQL sends 16 KiB packets; 1 MiB ones cut the per-packet cost
_STEP = 1 << 20


def _write_packet(conn: Any, chunk: memoryview) -> None:
    """PyMySQL's ``write_packet`` without its copy: the 4-byte header, then the chunk as it lies
    in the batch (``write_packet`` concatenates both into a new bytes object, and the caller
    had sliced a copy of the chunk too; with the payload's own copy, sending the x30 dump's batches
    took 0.138 CPU-s, now 0.106). Never an empty chunk: that packet ends the data."""
    n = len(chunk)
    conn._write_bytes(bytes((n & 0xFF, (n >> 8) & 0xFF, n >> 16, conn._next_seq_id)))
    conn._write_bytes(chunk)
    conn._next_seq_id = (conn._next_seq_id + 1) % 256


class LocalResult(pymysql.connections.MySQLResult):
    """Answers the server's ``LOAD DATA LOCAL`` request from memory, never from disk.

    PyMySQL would open whatever file name the server asks for (a malicious server could ask
    for ``/etc/shadow``); here only the payload registered for this very statement is sent."""

    def _read_load_local_packet(self, first_packet: Any) -> None:
        conn = self.connection
        load = pymysql.connections.LoadLocalPacketWrapper(first_packet)  # type: ignore[attr-defined]
        payload = getattr(conn, "_rb_payload", None)
        try:
            name = load.filename.decode("utf-8", "replace") if isinstance(load.filename, bytes) else str(load.filename)
            if payload is None or name != payload[0]:
                raise pymysql.err.OperationalError(1148, f"LOAD DATA LOCAL of {name!r} was not asked for")
            data = payload[1]
            for part in data if isinstance(data, tuple) else (data,):
                view = memoryview(part)
                for i in range(0, len(view), _STEP):
                    _write_packet(conn, view[i:i + _STEP])
        finally:
            conn.write_packet(b"")  # type: ignore[union-attr]  # end of data
            ok = conn._read_packet()  # type: ignore[union-attr]
        if not ok.is_ok_packet():
            raise pymysql.err.OperationalError(2014, "Commands Out of Sync")
        self._read_ok_packet(ok)  # type: ignore[attr-defined]


class Connection(pymysql.connections.Connection):
    """A PyMySQL connection whose LOAD DATA LOCAL reads a registered in-memory payload."""

    #: the statement's file name and its content: one buffer, or parts sent one after the other
    _rb_payload: tuple[str, Payload] | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        # No TLS option (nor an option file that may hold some): PyMySQL's PREFERRED mode,
        # with a shared context instead of one per connection.
        preferred = not any(kwargs.get(k) for k in _TLS_OPTIONS)
        if preferred:
            kwargs["ssl_disabled"] = True
        super().__init__(*args, **kwargs)
        if preferred and pymysql.connections.SSL_ENABLED:  # type: ignore[attr-defined]
            self.ssl, self._ssl_required, self.ctx = True, False, _preferred_context()

    def _read_query_result(self, unbuffered: bool = False) -> int:
        if unbuffered:
            return int(super()._read_query_result(unbuffered))  # type: ignore[misc]
        self._result = None
        result = LocalResult(self)
        result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows or 0)
