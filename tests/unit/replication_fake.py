"""A server that answers from recorded rows (tests/data/replication/*.json), for the MySQL path of the
``replication`` action: only MariaDB runs on this machine. It keeps the little state the
statements change (read_only, the source link, the threads) and answers SHOW … STATUS in the
recorded column layout of its version, so the action meets the answers a real server gives.
It refuses the spelling its version does not know (ERROR 1064), as the server would."""

from __future__ import annotations

import copy
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from engine.errors import SqlError
from engine.model import Host, SqlResult
from engine.run.context import ActionContext

DATA = Path(__file__).resolve().parents[1] / "data" / "replication"


def recorded(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / name).read_text()))


class FakeServer:
    def __init__(self, variables: dict[str, Any], status_row: dict[str, Any] | None):
        self.vars = {k.lower(): ("" if v is None else str(v)) for k, v in variables.items()}
        self.row = copy.deepcopy(status_row)
        self.statements: list[tuple[str, list[Any]]] = []
        v = self.vars["version"]
        self.mariadb = "mariadb" in v.lower()
        nums = tuple(int(x) for x in re.findall(r"\d+", v)[:3])
        self.replica_words = not self.mariadb and nums >= (8, 0, 22)
        self.modern_change = not self.mariadb and nums >= (8, 0, 23)

    # -- helpers --------------------------------------------------------------------------------
    def col(self, modern: str, old: str) -> str:
        if self.mariadb or not self.replica_words:
            return old
        return modern

    def _rows(self, sql: str, rows: list[dict[str, Any]]) -> SqlResult:
        return SqlResult(sql=sql, columns=tuple(rows[0]) if rows else ("x",), rows=tuple(rows), rowcount=len(rows), duration=0.0)

    def _ok(self, sql: str) -> SqlResult:
        return SqlResult(sql=sql, columns=(), rows=(), rowcount=0, duration=0.0)

    def _syntax(self, sql: str) -> SqlError:
        return SqlError("You have an error in your SQL syntax", errno=1064, sql=sql)

    # -- the protocol ----------------------------------------------------------------------------
    def query(self, sql: str, params: Any = None, *, timeout: float | None = None) -> SqlResult:
        params = list(params or [])
        self.statements.append((sql, params))
        s = " ".join(sql.split())
        up = s.upper()
        if up.startswith("SHOW GLOBAL VARIABLES WHERE"):
            return self._rows(s, [{"Variable_name": n, "Value": self.vars[n.lower()]} for n in params if n.lower() in self.vars])
        if up.startswith("SHOW GLOBAL STATUS"):
            return self._rows(s, [])
        if up in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
            if (up == "SHOW REPLICA STATUS") != self.replica_words and not self.mariadb:
                raise self._syntax(s)
            return self._rows(s, [dict(self.row)] if self.row else [])
        if up in ("SHOW REPLICAS", "SHOW SLAVE HOSTS"):
            return self._rows(s, [])
        if "PROCESSLIST" in up or up.startswith("SELECT CURRENT_USER"):
            return self._rows(s, [])
        m = re.match(r"SET GLOBAL (READ_ONLY|SUPER_READ_ONLY) = (ON|OFF)$", up)
        if m:
            self.vars[m.group(1).lower()] = m.group(2)
            if m.group(1) == "SUPER_READ_ONLY" and m.group(2) == "ON":
                self.vars["read_only"] = "ON"
            if m.group(1) == "READ_ONLY" and m.group(2) == "OFF" and self.vars.get("super_read_only"):
                self.vars["super_read_only"] = "OFF"
            return self._ok(s)
        m = re.match(r"(START|STOP) (REPLICA|SLAVE)( IO_THREAD| SQL_THREAD)?$", up)
        if m:
            if (m.group(2) == "REPLICA") != self.replica_words and not self.mariadb:
                raise self._syntax(s)
            if self.row is None:
                raise SqlError("The server is not configured as slave", errno=1200, sql=s)
            on = "Yes" if m.group(1) == "START" else "No"
            which = (m.group(3) or "").strip()
            if which in ("", "IO_THREAD"):
                self.row[self.col("Replica_IO_Running", "Slave_IO_Running")] = on
            if which in ("", "SQL_THREAD"):
                self.row[self.col("Replica_SQL_Running", "Slave_SQL_Running")] = on
            return self._ok(s)
        if up.startswith("CHANGE REPLICATION SOURCE TO") or up.startswith("CHANGE MASTER TO"):
            if up.startswith("CHANGE REPLICATION SOURCE TO") != self.modern_change:
                raise self._syntax(s)
            keys = re.findall(r"(\w+) = %s", s)
            values = dict(zip(keys, params, strict=True))
            base = self.row or {self.col("Replica_IO_Running", "Slave_IO_Running"): "No",
                                self.col("Replica_SQL_Running", "Slave_SQL_Running"): "No"}
            p = "Source" if self.replica_words else "Master"
            for k, v in values.items():
                name = {"HOST": f"{p}_Host", "PORT": f"{p}_Port", "USER": f"{p}_User"}.get(k.split("_", 1)[1])
                if name:
                    base[name] = v
            if "AUTO_POSITION = 1" in up:
                base["Auto_Position"] = 1
            self.row = base
            return self._ok(s)
        if up in ("RESET REPLICA ALL", "RESET SLAVE ALL"):
            self.row = None
            return self._ok(s)
        raise AssertionError(f"the fake server got a statement it has no recorded answer for: {s}")

    def close(self) -> None:
        pass


class FakeConns:
    def __init__(self, host: Host, server: FakeServer):
        self.host = host
        self.server = server

    def sql(self) -> FakeServer:
        return self.server

    def shell(self) -> Any:
        raise AssertionError("no shell in these tests")

    @contextmanager
    def own_sql(self) -> Iterator[FakeServer]:
        yield self.server


def context(servers: dict[str, tuple[FakeServer, dict[str, Any]]], on: str, notes: dict[str, Any] | None = None) -> ActionContext:
    """An action context on host ``on``; every host of ``servers`` (name → server, host vars) is a peer."""
    conns = {n: FakeConns(Host(name=n, vars=v, groups=()), s) for n, (s, v) in servers.items()}
    mine = conns[on]
    return ActionContext(host=mine.host, conns=mine, vars={"hostvars": {n: {} for n in servers}},  # type: ignore[arg-type]
                         run_id="t1", check_mode=False, step_key="s/t", source=None, peers=lambda n: conns[n],  # type: ignore[arg-type,return-value]
                         notes=dict(notes or {}))
