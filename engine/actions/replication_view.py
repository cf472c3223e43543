"""What the ``replication`` action registers, and how it sees the other hosts of the inventory:
their replication addresses (to point a replica at one, to name a source by its inventory
name) and their servers (the failover assessment reads every candidate)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import ConnectError, LostConnection, RunbookError
from engine.mysql.failover import Candidate, assess
from engine.mysql.replication import ReplicationState, read_state

if TYPE_CHECKING:
    from engine.run.context import ActionContext

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Peers:
    """The inventory as the action needs it: addresses by host name and back."""

    def __init__(self, ctx: ActionContext):
        self.ctx = ctx
        self._addresses: dict[str, tuple[str, int]] = {}

    def var(self, name: str, key: str, default: Any = None) -> Any:
        from engine.inventory.connection import render_host_var

        host = self.ctx.host if name == self.ctx.host.name else self._conns(name).host
        return render_host_var(host, key, default)

    def _conns(self, name: str) -> Any:
        if self.ctx.peers is None:
            raise RunbookError(f"cannot reach host {name!r} from here: no inventory in this context")
        return self.ctx.peers(name)

    def address(self, name: str) -> tuple[str, int]:
        """Where replicas reach ``name``'s server: (host, port)."""
        if name not in self._addresses:
            host = self.var(name, "replication_host")
            if not host:
                mysql_host = self.var(name, "mysql_host")
                via = str(self.var(name, "mysql_via", "") or "")
                if mysql_host and str(mysql_host) not in _LOOPBACK and via != "tunnel":
                    host = mysql_host
                else:
                    host = self.var(name, "ssh_host") or self.var(name, "ansible_host") or name
            port = self.var(name, "replication_port") or self.var(name, "mysql_port") or 3306
            self._addresses[name] = (str(host), int(port))
        return self._addresses[name]

    def name_of(self, host: str | None, port: int | None) -> str | None:
        """The inventory host whose replication address is ``host:port`` (None: not one of ours)."""
        if host is None:
            return None
        names = list(self.ctx.vars.get("hostvars") or [])
        for name in names:
            try:
                h, p = self.address(name)
            except (RunbookError, ValueError, TypeError):
                continue
            if p == port and (h == host or {h, host} <= set(_LOOPBACK)):
                return name
        return None

    def read(self, name: str) -> ReplicationState:
        """``name``'s replication state, on a session of this step's own: steps on several
        hosts run at once, and a MySQL session is never shared between threads."""
        if name == self.ctx.host.name:
            return read_again(self.ctx.sql())
        with self._conns(name).own_sql() as sql:
            return read_again(sql)


def read_again(sql: Any) -> ReplicationState:
    """:func:`read_state`, once more on a new connection when the session was killed under it
    (a fence kills every client session of a server, ours from earlier steps too): it only reads."""
    try:
        return read_state(sql)
    except LostConnection:
        return read_state(sql)


def state_data(st: ReplicationState, peers: Peers) -> dict[str, Any]:
    """The registered fields of one server's state."""
    link = st.link
    source = None
    if link is not None:
        source = peers.name_of(link.source_host, link.source_port) or f"{link.source_host}:{link.source_port}"
    replicas = []
    for r in st.replicas:
        named = peers.name_of(r.get("host"), r.get("port")) if r.get("port") else None
        replicas.append(dict(r, host=named or r.get("host")))
    return {
        "flavor": st.flavor, "server_id": st.server_id, "role": st.role, "source": source,
        "source_host": link.source_host if link else None, "source_port": link.source_port if link else None,
        "io_running": link.io_running if link else None, "sql_running": link.sql_running if link else None,
        "seconds_behind": link.seconds_behind if link else None, "gtid": st.executed or None,
        "received": str(st.received()) or None, "unapplied": st.unapplied(),
        "using_gtid": link.gtid_mode if link else None, "sql_delay": link.sql_delay if link else None,
        "source_log": link.source_log.to_dict() if link else None, "exec_log": link.exec_log.to_dict() if link else None,
        "last_error": link.last_error if link else None, "read_only": st.read_only, "super_read_only": st.super_read_only,
        "log_bin": st.log_bin, "log_replica_updates": st.log_replica_updates,
        "replicas": replicas if link is None else [],
    }


def _read_peer(peers: Peers, name: str) -> tuple[ReplicationState | None, str | None]:
    try:
        return peers.read(name), None
    except ConnectError as exc:
        return None, exc.message
    except RunbookError as exc:
        return None, exc.render()


def assessment(peers: Peers, candidates: Any, old_primary: str | None) -> tuple[dict[str, Any], list[str]]:
    """The failover assessment of ``candidates`` (names, or a group name), read live."""
    names = candidates if isinstance(candidates, list) else (peers.ctx.vars.get("groups") or {}).get(str(candidates))
    if not names:
        raise RunbookError(f"candidates: {candidates!r} names no host", hint="a list of inventory hosts or a group")
    found = []
    for name in names:
        if name == old_primary:
            continue
        st, err = _read_peer(peers, name)
        try:
            prio = int(peers.var(name, "failover_priority", 0) or 0)
        except (TypeError, ValueError):
            raise RunbookError(f"host {name}: failover_priority must be a number") from None
        found.append(Candidate(host=name, state=st, priority=prio, error=err))
    result = assess(found)
    data: dict[str, Any] = result.to_dict()
    warnings = list(result.warnings)
    if old_primary is not None:
        st, err = _read_peer(peers, old_primary)
        old: dict[str, Any] = {"host": old_primary, "answering": st is not None, "error": err}
        if st is not None:
            old.update(gtid=st.executed or None, read_only=st.read_only, role=st.role)
            chosen = next((c for c in found if c.host == result.chosen), None)
            if chosen is not None and chosen.state is not None:
                gap = chosen.state.received().missing(st.gtids())
                from engine.mysql.gtid import missing_text

                old["chosen_lacks"] = missing_text(gap) if gap else None
                old["chosen_lacks_count"] = sum(r.count for r in gap)
        data["old_primary"] = old
    return data, warnings
