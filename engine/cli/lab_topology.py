"""The lab's replication: set up at ``lab up --replicas N``, described by ``lab status``.

Set-up is GTID replication from ``db1`` (``MASTER_USE_GTID=slave_pos``) as the ``repl``
account, through the same statements the ``replication`` action uses
(``engine/mysql/replication.py``). The description is read live from each server: after a
failover drill ``lab status`` shows who follows whom now, not what ``lab up`` built.
"""

from __future__ import annotations

import time

from engine.errors import RunbookError
from engine.cli.lab_sshd import LabError
from engine.model import MysqlSettings
from engine.mysql.instance import HOST, MariadbInstance
from engine.mysql.replication import ReplicationState, read_state
from engine.mysql.gtid import missing_text
from engine.transport.mysql import MysqlSession


def session(srv: MariadbInstance) -> MysqlSession:
    return MysqlSession(MysqlSettings(host=HOST, port=srv.port, user="root", connect_timeout=3))


def replicate(primary: MariadbInstance, replicas: list[MariadbInstance], user: str, password: str, limit: float = 60) -> None:
    """The replication account on the primary, then every replica following it (GTID)."""
    src = session(primary)
    try:
        src.query("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", [user, HOST, password])
        src.query("GRANT REPLICATION SLAVE ON *.* TO %s@%s", [user, HOST])
        target = read_state(src).gtids()
    finally:
        src.close()
    for srv in replicas:
        s = session(srv)
        try:
            d = read_state(s).dialect
            s.query(d.change_source(HOST, primary.port, user, True, connect_retry=2), [HOST, primary.port, user, password])
            s.query(d.threads("START"))
        finally:
            s.close()
    end = time.monotonic() + limit
    for srv in replicas:
        s = session(srv)
        try:
            while True:
                st = read_state(s)
                if st.link is not None and st.link.io_running == "Yes" and st.link.sql and st.gtids().contains(target):
                    break
                if time.monotonic() > end:
                    why = (st.link.last_error if st.link else None) or "not caught up"
                    raise LabError(f"{srv.dir.name} did not start replicating from db1 within {limit:.0f}s: {why}",
                                   hint=f"its error log: {srv.error_log}")
                time.sleep(0.1)
        finally:
            s.close()


def _by_port(servers: dict[str, MariadbInstance]) -> dict[int, str]:
    return {s.port: n for n, s in servers.items()}


def _line(name: str, srv: MariadbInstance, st: ReplicationState, names: dict[int, str],
          states: dict[str, ReplicationState]) -> str:
    where = f"{name}  MariaDB running on {HOST}:{srv.port}"
    ro = "read-only" if st.read_only else "writable"
    if st.link is None:
        followers = sorted(n for n, o in states.items() if o.link is not None and names.get(o.link.source_port or 0) == name)
        return f"{where}  primary, {ro}, gtid {st.executed or '(none)'}; replicas: {', '.join(followers) or 'none'}"
    link = st.link
    source = names.get(link.source_port or 0, f"{link.source_host}:{link.source_port}")
    lag = "-" if link.seconds_behind is None else f"{link.seconds_behind} s"
    parts = [f"io {link.io_running}, sql {link.sql_running}, lag {lag}"]
    unapplied = st.unapplied()
    if unapplied:
        parts.append(f"{unapplied} received, not applied")
    line = f"{where}  replica of {source} ({'; '.join(parts)}), {ro}, gtid {st.executed or '(none)'}"
    src = states.get(source)
    if src is not None:
        behind = st.gtids().missing(src.gtids())
        line += f"; behind {source}: {missing_text(behind) if behind else 'nothing'}"
        extra = src.gtids().missing(st.gtids()) or st.gtids().diverged(src.gtids())
        if extra:
            shown = missing_text(extra) if not isinstance(extra[0], str) else ", ".join(map(str, extra))
            line += f"\n      DIVERGED: it has transactions {source} lacks ({shown}): a write on the replica?"
    if link.last_error:
        line += f"\n      last error: {link.last_error}"
    return line


def describe(servers: dict[str, MariadbInstance]) -> list[str]:
    """One line per server: running or not, role, source, threads, lag, GTID position."""
    states: dict[str, ReplicationState] = {}
    lines: dict[str, str] = {}
    for name, srv in servers.items():
        if not srv.running:
            lines[name] = f"{name}  MariaDB STOPPED (crashed or stopped: `runbook lab up` restarts it on its datadir)"
            continue
        s = session(srv)
        try:
            states[name] = read_state(s)
        except RunbookError as exc:
            lines[name] = f"{name}  MariaDB running on {HOST}:{srv.port}, not answering yet (crash recovery?): {exc.message}"
        finally:
            s.close()
    names = _by_port(servers)
    for name, st in states.items():
        lines[name] = _line(name, servers[name], st, names, states)
    return [f"{lines[n]}" + (f"\n      datadir {servers[n].datadir}" if n in states else "") for n in servers]
