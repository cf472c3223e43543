"""Foreign keys, required columns, row counts and rules: each becomes a :class:`Task` whose
query the server answers with an index where one exists.

Orphans are counted with one anti-join per constraint, on the parent's key (InnoDB requires an
index on the referenced columns, so each child row costs one index lookup)::

    SELECT COUNT(*) AS total, COALESCE(SUM(c.a IS NOT NULL AND c.b IS NOT NULL AND p.x IS NULL), 0) AS orphans
      FROM child c LEFT JOIN parent p ON p.x = c.a AND p.y = c.b

A key with a NULL column is not an orphan (MATCH SIMPLE: the server never checks it either).
"""

from __future__ import annotations

from typing import Any

from engine.actions.verify.model import SAMPLE, Check, Sessions, Task
from engine.mysql.values import plain
from engine.mysql.introspect import Column, ForeignKey
from engine.mysql.sqlutil import is_read_only, qualified, quote_ident


def _q(alias: str, col: str) -> str:
    return f"{alias}.{quote_ident(col)}"


def _sample(rows: tuple[dict[str, Any], ...]) -> list[Any]:
    return [plain(dict(r)) for r in rows[:SAMPLE]]


# --------------------------------------------------------------------------- foreign keys


def fk_task(fk: ForeignKey, child_pk: tuple[str, ...], weight: int) -> Task:
    """Orphans of one constraint: the count, and up to 10 offending keys (child PK + FK columns)."""
    arrow = f"{fk.table}({', '.join(fk.columns)}) → {fk.ref_table if fk.ref_schema == fk.schema else fk.ref_schema + '.' + fk.ref_table}({', '.join(fk.ref_columns)})"
    check = Check(name=f"fk {fk.table}.{fk.name}", kind="foreign_key", table=fk.table, expected=0, detail=arrow)
    child, parent = qualified(fk.schema, fk.table), qualified(fk.ref_schema, fk.ref_table)
    on = " AND ".join(f"{_q('p', r)} = {_q('c', c)}" for c, r in zip(fk.columns, fk.ref_columns, strict=True))
    present = " AND ".join(f"{_q('c', c)} IS NOT NULL" for c in fk.columns)
    orphan = f"{present} AND {_q('p', fk.ref_columns[0])} IS NULL"
    count_sql = f"SELECT COUNT(*) AS total, COALESCE(SUM({orphan}), 0) AS orphans FROM {child} c LEFT JOIN {parent} p ON {on}"
    shown = list(dict.fromkeys([*child_pk, *fk.columns]))
    sample_sql = (f"SELECT {', '.join(_q('c', c) for c in shown)} FROM {child} c LEFT JOIN {parent} p ON {on}"
                  f" WHERE {orphan} LIMIT {SAMPLE}")

    def run(s: Sessions, checks: list[Check]) -> None:
        c = checks[0]
        row = s.main.query(count_sql).rows[0]
        c.rows, c.count = int(row["total"]), int(row["orphans"])
        if c.count:
            c.sample = _sample(s.main.query(sample_sql).rows)
            c.detail = f"{arrow}: {c.count} orphan row(s)"
        c.verdict(bool(c.count))

    return Task([check], run, weight)


# --------------------------------------------------------------------------- required columns


def missing_expr(col: Column, mode: str) -> str:
    """The condition that makes a value missing.

    ``missing``: NULL, or ``''`` in a text column (``0 = ''`` is true in MySQL, so a number is
    never compared with ``''``). ``empty``: ``''`` in a NOT NULL text column (what an
    ``sql_mode=''`` load puts where a value was missing). ``zero_date``: a zero date or a date
    with a zero month or day, which only a lax sql_mode lets in.
    """
    c = quote_ident(col.name)
    if mode == "zero_date":
        return f"(MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0)"
    if mode == "empty":
        return f"{c} = ''"
    return f"({c} IS NULL OR {c} = '')" if col.is_text else f"{c} IS NULL"


def required_task(schema: str, table: str, wanted: list[tuple[Column, str]], pk: tuple[str, ...],
                  severity: str, weight: int) -> Task:
    """One scan of ``table`` answers every required column of it; samples only where missing."""
    checks = []
    for col, mode in wanted:
        what = {"zero_date": "zero dates", "empty": "empty strings"}.get(mode, "NULL or ''" if col.is_text else "NULL")
        checks.append(Check(name=f"required {table}.{col.name}", kind="required", table=table, severity=severity,  # type: ignore[arg-type]
                            expected=0, detail=what))
    exprs = [missing_expr(col, mode) for col, mode in wanted]
    tbl = qualified(schema, table)
    sums = ", ".join(f"COALESCE(SUM({e}), 0) AS m{i}" for i, e in enumerate(exprs))
    count_sql = f"SELECT COUNT(*) AS total, {sums} FROM {tbl}"

    def run(s: Sessions, found: list[Check]) -> None:
        row = s.main.query(count_sql).rows[0]
        total = int(row["total"])
        for i, c in enumerate(found):
            c.rows = total if i == 0 else 0  # one scan for all columns
            c.count = int(row[f"m{i}"])
            if c.count:
                col = wanted[i][0]
                shown = list(dict.fromkeys([*pk, col.name])) if pk else [col.name]
                sample = s.main.query(f"SELECT {', '.join(quote_ident(x) for x in shown)} FROM {tbl}"
                                      f" WHERE {exprs[i]} LIMIT {SAMPLE}").rows
                c.sample = _sample(sample)
                c.detail += f": {c.count} row(s)"
            c.verdict(bool(c.count))

    return Task(checks, run, weight)


def auto_required(cols: list[Column]) -> list[tuple[Column, str]]:
    """``required: auto``: NOT NULL text columns must not hold ``''``; dates must not be zero."""
    out: list[tuple[Column, str]] = []
    for col in cols:
        if col.generated:
            continue
        if col.is_text and not col.nullable:
            out.append((col, "empty"))
        elif col.is_date:
            out.append((col, "zero_date"))
    return out


# --------------------------------------------------------------------------- row counts


def row_count_task(schema: str, table: str, expected: int, compare: str, source: str, weight: int) -> Task:
    """Exact ``COUNT(*)`` (never ``TABLE_ROWS``, an estimate) against an expected number."""
    sign = "≥" if compare == "at_least" else "="
    check = Check(name=f"rows {table}", kind="row_count", table=table, expected=expected,
                  detail=f"COUNT(*) {sign} {expected} ({source})")

    def run(s: Sessions, checks: list[Check]) -> None:
        c = checks[0]
        c.count = c.rows = int(s.main.query(f"SELECT COUNT(*) AS n FROM {qualified(schema, table)}").rows[0]["n"])
        ok = c.count >= expected if compare == "at_least" else c.count == expected
        c.detail = f"{c.count} row(s), expected {'at least ' if compare == 'at_least' else ''}{expected} ({source})"
        c.verdict(not ok)

    return Task([check], run, weight)


# --------------------------------------------------------------------------- rules


def rule_task(name: str, sql: str, params: list[Any], severity: str, table: str | None) -> Task:
    """A business rule: a query whose first column of the first row counts the violations."""
    check = Check(name=name, kind="rule", table=table, severity=severity, expected=0)  # type: ignore[arg-type]

    def run(s: Sessions, checks: list[Check]) -> None:
        c = checks[0]
        if not is_read_only(sql):
            raise ValueError(f"rule {name!r} is not a read-only query: verify never writes to the data it checks")
        res = s.main.query(sql, params)
        value = next(iter(res.rows[0].values())) if res.rows else 0
        try:
            c.count = int(value or 0)
        except (TypeError, ValueError):
            raise ValueError(f"rule {name!r} must return a count of violations, got {value!r}") from None
        c.detail = f"{c.count} violation(s)"
        c.verdict(bool(c.count))

    return Task([check], run, 0)
