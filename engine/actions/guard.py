"""The identity guard: destructive actions refuse to run on a server they were not meant for.

GitLab 2017: ``rm -rf`` ran on the primary instead of the secondary. The rule here: before a
destructive action changes anything, the server's ``@@hostname`` / ``@@server_uuid`` must match

* ``mysql_identity`` pinned in the inventory (either the hostname or the server_uuid), and
* the identity gathered earlier in this run (by ``mysql_facts`` or the first destructive step),
  recorded in ``ctx.run_state["identity"][host]``.

The first destructive step of a run records the identity when nothing did before, so every
later step of the same run is held to the same server even without ``mysql_facts``.

```yaml
all:
  hosts:
    db1: {mysql_identity: db1.prod.example.com}   # or its server_uuid
```

Also here: small server-introspection helpers every DR action needs (global variables, flavor,
version), so they are written once.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from engine.errors import ActionError
from engine.model import MysqlSettings
from engine.transport.base import Sql

if TYPE_CHECKING:
    from engine.run.context import ActionContext
    from engine.transport.mysql import MysqlSession  # imported where a session is made or asked for: not to validate

IDENTITY_KEY = "identity"


# --------------------------------------------------------------------------- server variables


def global_variables(sql: Sql, names: list[str]) -> dict[str, str | None]:
    """``SHOW GLOBAL VARIABLES`` for ``names`` (lower case); an absent variable maps to None.

    ``SHOW ... WHERE Variable_name IN (...)`` never fails on a name the server does not know
    (``server_uuid`` on MariaDB, ``super_read_only`` before MySQL 5.7.8), unlike ``SELECT @@x``.
    """
    marks = ", ".join(["%s"] * len(names))
    res = sql.query(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", list(names))
    found = {str(r["Variable_name"]).lower(): r["Value"] for r in res.rows}
    return {n: (None if found.get(n) is None else str(found[n])) for n in names}


def global_status(sql: Sql, names: list[str]) -> dict[str, str | None]:
    """``SHOW GLOBAL STATUS`` for ``names`` (case as written); absent → None."""
    marks = ", ".join(["%s"] * len(names))
    res = sql.query(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({marks})", list(names))
    found = {str(r["Variable_name"]).lower(): r["Value"] for r in res.rows}
    return {n: (None if found.get(n.lower()) is None else str(found[n.lower()])) for n in names}


def as_bool(value: str | None) -> bool | None:
    """``'ON'``/``'1'`` → True, ``'OFF'``/``'0'`` → False, absent → None."""
    if value is None:
        return None
    return value.strip().upper() in ("ON", "1", "TRUE", "YES")


def flavor_of(version: str, version_comment: str) -> str:
    """``mariadb`` | ``percona`` | ``mysql`` from ``@@version`` and ``@@version_comment``."""
    if "mariadb" in version.lower() or "mariadb" in version_comment.lower():
        return "mariadb"
    if "percona" in version_comment.lower() or "percona" in version.lower():
        return "percona"
    return "mysql"


def version_tuple(version: str) -> tuple[int, int, int]:
    """``'10.11.19-MariaDB-0+deb12u1'`` → ``(10, 11, 19)``; MariaDB's old ``5.5.5-`` prefix is skipped."""
    text = version.removeprefix("5.5.5-")
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def server_flavor(sql: Sql) -> tuple[str, tuple[int, int, int]]:
    """(flavor, version tuple) of the server behind ``sql``."""
    v = global_variables(sql, ["version", "version_comment"])
    return flavor_of(v["version"] or "", v["version_comment"] or ""), version_tuple(v["version"] or "")


def session_settings(sql: Sql) -> MysqlSettings:
    """The connection settings behind a session (to reach the same server as someone else)."""
    from engine.transport.mysql import MysqlSession

    if not isinstance(sql, MysqlSession):
        raise ActionError("this action needs a MySQL session with connection settings")
    return sql.settings


def sibling_session(sql: Sql, **changes: Any) -> MysqlSession:
    """A new session to the same server (same tunnel), with some settings changed: another
    user (prove a fence), a default database (statements that name tables unqualified). Its
    connections are told to whoever ``sql``'s are (the run's journal: a resume stops what a
    dead process left running on any of them, a snapshot's copy workers too)."""
    from engine.transport.mysql import MysqlSession

    settings = dataclasses.replace(session_settings(sql), **changes)
    return MysqlSession(settings, tunnel=getattr(sql, "_tunnel", None), on_connect=getattr(sql, "on_connect", None))


# --------------------------------------------------------------------------- identity


def server_identity(sql: Sql) -> dict[str, Any]:
    """``{hostname, server_uuid, server_id}``; server_uuid is None on MariaDB (it has none)."""
    v = global_variables(sql, ["hostname", "server_uuid", "server_id"])
    return {
        "hostname": v["hostname"],
        "server_uuid": v["server_uuid"],
        "server_id": int(v["server_id"]) if v["server_id"] is not None else None,
    }


def describe_identity(ident: dict[str, Any]) -> str:
    """``db1 (server_uuid 3e11fa47-..., server_id 1)`` for messages."""
    extra = []
    if ident.get("server_uuid"):
        extra.append(f"server_uuid {ident['server_uuid']}")
    if ident.get("server_id") is not None:
        extra.append(f"server_id {ident['server_id']}")
    return f"{ident.get('hostname')}" + (f" ({', '.join(extra)})" if extra else "")


def _same(a: Any, b: Any) -> bool:
    return str(a).strip().casefold() == str(b).strip().casefold()


def recorded_identity(ctx: ActionContext) -> dict[str, Any] | None:
    """The identity recorded for this host earlier in the run, if any."""
    return ctx.run_state.get(IDENTITY_KEY, {}).get(ctx.host.name)


def record_identity(ctx: ActionContext, ident: dict[str, Any], source: str) -> None:
    """Remember ``ident`` for this host for the rest of the run (first record wins)."""
    table = ctx.run_state.setdefault(IDENTITY_KEY, {})
    if ctx.host.name not in table:
        table[ctx.host.name] = dict(ident, source=source)


def identity_mismatch(ctx: ActionContext, found: dict[str, Any]) -> str | None:
    """Why ``found`` is not the server this host must be, or None when it is."""
    pinned = ctx.host.vars.get("mysql_identity")
    if pinned not in (None, ""):
        candidates = [found.get("hostname"), found.get("server_uuid")]
        if not any(c is not None and _same(c, pinned) for c in candidates):
            return f"expected {pinned} (pinned by mysql_identity in the inventory), but the server is {describe_identity(found)}"
    seen = recorded_identity(ctx)
    if seen:
        # Compare every field the first record has: server_id catches a second instance on the
        # same machine (same hostname) when there is no server_uuid (MariaDB).
        for key in ("hostname", "server_uuid", "server_id"):
            if seen.get(key) is not None and not _same(seen.get(key), found.get(key)):
                by = seen.get("source") or "an earlier step"
                return (f"expected {describe_identity(seen)} (gathered by {by} earlier in this run), "
                        f"but the server is {describe_identity(found)}")
    return None


def check_identity(ctx: ActionContext, what: str = "change anything") -> dict[str, Any]:
    """Refuse (:class:`ActionError`) unless the server is the one this host must be.

    ``what`` completes the message: ``refusing to <what> on <host>: expected ...``. Returns
    the server's identity (recorded for the rest of the run when nothing was recorded yet).
    """
    found = server_identity(ctx.sql())
    why = identity_mismatch(ctx, found)
    if why:
        raise ActionError(
            f"refusing to {what} on {ctx.host.name}: {why}",
            hint="check mysql_host/mysql_port/ssh_host of this host in the inventory: this is not the server "
                 "the runbook was written for (GitLab 2017: the right command on the wrong host)",
        )
    record_identity(ctx, found, source=ctx.step_key or "an earlier step")
    return found
