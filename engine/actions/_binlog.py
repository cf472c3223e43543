"""What the three point-in-time recovery actions share: their common arguments, where the
binlogs come from, where the window starts (a dump's coordinates or ``start:``), and where this
run fenced the host (the ``fence`` mark ``stop_writes`` declares)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.actions.base import run_mark
from engine.errors import ActionError
from engine.mysql.binlog.position import BinlogPosition

# The binlog reader, sources and window are imported when a step runs: validation imports
# this module for window_problems() and the schemas only (runbook validate's start-up).
if TYPE_CHECKING:
    from engine.mysql.binlog.reader import EndAt, Transaction
    from engine.mysql.binlog.sources import BinlogSource
    from engine.mysql.binlog.window import Point, Start
    from engine.run.context import ActionContext

_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}
POINT = {"type": ["object", "string"], "description": "an event binlog_find registered, {gtid}, {file, pos} or {datetime}"}
COMMON: dict[str, Any] = {
    "binlogs": {"type": "string", "minLength": 1,
                "description": "server (default: the host's server, read as a replica) or a directory of archived binlog files on the host"},
    "schema": {"type": "string", "minLength": 1, "description": "the schema whose tables' events are read"},
    "tables": dict(_LIST, minItems=1, description="tables of the schema (default: every table)"),
    "replica_server_id": {"type": ["integer", "string"], "minimum": 1,
                          "description": "the server id the engine presents when it reads binlogs as a replica"},
}
WINDOW: dict[str, Any] = {
    "from_dump": {"type": "string", "minLength": 1,
                  "description": "a dump (on the host) whose --master-data/--gtid coordinates start the window"},
    "start": {"type": ["object", "string"], "description": "{file, pos} or {gtid} (a GTID state): where the window starts"},
    "stop_before": POINT,
}


def window_problems(args: Any) -> list[tuple[str, str]]:
    if not isinstance(args, dict):
        return []
    if args.get("from_dump") and args.get("start"):
        return [("from_dump", "give from_dump or start, not both")]
    if not args.get("from_dump") and not args.get("start"):
        return [("", "where the binlogs start is missing: add from_dump: (the dump restored) or start: {file, pos} / {gtid}")]
    return []


class BinlogInputs:
    """The common arguments of a step, made into sources, points and positions."""

    def __init__(self, ctx: ActionContext, args: dict[str, Any]):
        self.ctx, self.args = ctx, args

    @property
    def schema(self) -> str:
        return str(self.args["schema"])

    @property
    def tables(self) -> list[str] | None:
        t = self.args.get("tables")
        return [str(x) for x in t] if t else None

    def source(self) -> BinlogSource:
        from engine.actions.guard import session_settings
        from engine.mysql.binlog.sources import ArchiveSource, ServerSource

        where = str(self.args.get("binlogs") or "server")
        host = self.ctx.host.name
        if where == "server":
            from engine.transport.binlog_dump import DEFAULT_SERVER_ID, BinlogDump

            sql = self.ctx.sql()
            settings = session_settings(sql)
            tunnel = getattr(sql, "_tunnel", None)
            sid = int(self.args.get("replica_server_id") or DEFAULT_SERVER_ID)
            return ServerSource(sql, lambda: BinlogDump(settings, tunnel, server_id=sid), host=host)
        from engine.transport.local import LocalShell

        shell = self.ctx.shell()
        return ArchiveSource(shell, where, host=host, local=isinstance(shell, LocalShell))

    def start_position(self) -> BinlogPosition:
        if self.args.get("from_dump"):
            from engine.mysql.dump.coordinates import read_coordinates

            found = read_coordinates(str(self.args["from_dump"]), self.ctx.shell())
            if found.of_source:
                self.ctx.warn(f"{self.args['from_dump']} was taken with --dump-slave: its coordinates name its source's binlogs")
            return found.position
        start = self.args.get("start")
        pos = BinlogPosition.from_dict(start) if isinstance(start, dict) else (
            BinlogPosition(gtid=str(start)) if isinstance(start, str) and start.strip() else None)
        if pos is None or not pos.known:
            raise ActionError(f"start: {start!r} names no position", hint="give start: {file, pos} or {gtid}")
        return pos

    def start(self, source: BinlogSource) -> Start:
        from engine.mysql.binlog.window import resolve_start

        return resolve_start(source, self.start_position())

    def to_epoch(self, text: str) -> float:
        from engine.mysql.binlog.window import epoch_of

        def server(t: str) -> float:
            v = self.ctx.sql().query("SELECT UNIX_TIMESTAMP(%s) AS e", [t]).rows[0]["e"]
            if v is None:
                raise ActionError(f"{t!r} is not a datetime the server understands")
            return float(v)

        return epoch_of(text, server)

    def point(self, value: Any, what: str) -> Point:
        from engine.mysql.binlog.window import parse_point

        return parse_point(value, what, to_epoch=self.to_epoch)

    def fence(self) -> BinlogPosition | None:
        """Where this run fenced the host (stop_writes' registered ``binlog``), if it did."""
        return BinlogPosition.from_dict(run_mark(self.ctx, "fence"))


def end_of(point: Point | None, fence: BinlogPosition | None) -> tuple[EndAt | None, Callable[[Transaction], bool] | None]:
    """The window's end from ``stop_before`` and the run's fence: a position, and/or a test
    ending it before a transaction (a GTID, a time, past the fence's GTID state)."""
    from engine.mysql.binlog.covered import Covered
    from engine.mysql.binlog.reader import EndAt
    from engine.mysql.binlog.window import earlier

    end: EndAt | None = None
    tests: list[Callable[[Transaction], bool]] = []
    if point is not None:
        if point.file is not None and point.pos is not None:
            end = EndAt(point.file, point.pos)
        elif point.gtid is not None:
            g = point.gtid
            tests.append(lambda t: t.gtid == g)
        elif point.time is not None:
            when = point.time
            tests.append(lambda t: t.time >= when)
    if fence is not None:
        if fence.file is not None and fence.pos is not None:
            end = earlier(end, EndAt(fence.file, fence.pos))
        elif fence.gtid:
            state = Covered(fence.gtid)
            tests.append(lambda t: bool(t.gtid) and not state.covers(t.gtid or ""))
    stop = (lambda t: any(f(t) for f in tests)) if tests else None
    return end, stop
