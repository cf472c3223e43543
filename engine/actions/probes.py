"""The ``unless:`` / ``creates:`` probes and the SQL/shell truth tests they share."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.run.context import ActionContext


def _truthy(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def sql_truth(text: str, ctx: ActionContext, timeout: float | None = None) -> bool:
    """True when the first column of the first row of the last statement is truthy."""
    from engine.actions.sql import rendered_statements

    session = ctx.sql()
    rows: tuple[dict[str, Any], ...] = ()
    for sql, params in rendered_statements(text, ctx.vars):
        left = ctx.remaining()
        res = session.query(sql, params, timeout=left if timeout is None else timeout if left is None else min(left, timeout))
        if res.returns_rows:
            rows = res.rows
    if not rows:
        return False
    return _truthy(next(iter(rows[0].values()), None))


def shell_truth(cmd: str, ctx: ActionContext) -> bool:
    return ctx.shell().run(cmd, timeout=ctx.remaining()).rc == 0


def path_exists(path: str, ctx: ActionContext) -> bool:
    return ctx.shell().run(f"test -e {shlex.quote(path)}", timeout=ctx.remaining()).rc == 0


def unless_probe(unless: Any, action: str, ctx: ActionContext) -> tuple[bool, str]:
    """Run an ``unless`` probe: (already done?, what was probed)."""
    from engine.templating.render import ENGINE

    if isinstance(unless, dict) and "sql" in unless:
        return sql_truth(unless["sql"], ctx), f"sql: {unless['sql']}"
    if isinstance(unless, dict) and "shell" in unless:
        cmd = str(ENGINE.render(unless["shell"], ctx.vars))
        return shell_truth(cmd, ctx), f"shell: {cmd}"
    if action == "sql":
        return sql_truth(str(unless), ctx), f"sql: {unless}"
    cmd = str(ENGINE.render(unless, ctx.vars))
    return shell_truth(cmd, ctx), f"shell: {cmd}"
