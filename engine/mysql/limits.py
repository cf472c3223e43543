"""Bounding one query's run time on the server itself, so a check that runs away stops there
(a client-side socket timeout alone leaves the query running on the server).

* MariaDB: ``SET STATEMENT max_statement_time = <seconds> FOR <statement>`` (error 1969).
* MySQL 5.7.8+: the optimizer hint ``SELECT /*+ MAX_EXECUTION_TIME(<ms>) */`` (error 3024);
  it applies to SELECT only, so other statements keep only the client-side timeout.
"""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Sequence

from engine.model import SqlResult
from engine.transport.base import Sql

#: server errors that mean "the statement ran past its time limit"
TIMEOUT_ERRNOS = frozenset({1969, 3024, 1317})
#: the client waits this much longer than the server-side limit before giving up on the socket
SOCKET_GRACE = 5.0

_LEADING_SELECT = re.compile(r"^(\s*)(select)\b", re.I)


def bounded(text: str, flavor: str, seconds: float | None) -> str:
    """``text`` with the server-side time limit of ``flavor`` (``mariadb`` | ``mysql`` | ``percona``)."""
    if not seconds:
        return text
    if flavor == "mariadb":
        return f"SET STATEMENT max_statement_time = {float(seconds):g} FOR {text.lstrip()}"
    m = _LEADING_SELECT.match(text)
    if m is None:
        return text
    return f"{m.group(1)}{m.group(2)} /*+ MAX_EXECUTION_TIME({max(1, int(seconds * 1000))}) */{text[m.end():]}"


class BoundedSql:
    """A session whose every query carries the time limit (server side, and the socket as a
    backstop). Implements the ``query`` part of :class:`~engine.transport.base.Sql`."""

    def __init__(self, session: Sql, flavor: str, seconds: float | None):
        self.session, self.flavor, self.seconds = session, flavor, seconds

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
              timeout: float | None = None) -> SqlResult:
        limit = self.seconds + SOCKET_GRACE if self.seconds else timeout
        return self.session.query(bounded(sql, self.flavor, self.seconds), params, timeout=limit)

    def close(self) -> None:
        self.session.close()
