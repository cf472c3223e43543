"""One batch's rows, written inside the worker's open transaction: ``LOAD DATA LOCAL`` where
that is exact, else the INSERT; an upsert into a table holding rows through its temporary copy
(:mod:`engine.actions.restore.upsert`); and the server's data warnings checked before the
batch may commit (:mod:`engine.actions.restore.rowcheck`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.actions.restore.convert import counts, load_data_payload
from engine.actions.restore.index import Batch
from engine.actions.restore.plan import TablePlan
from engine.actions.restore.rowcheck import DATA_ERRORS, ServerWarning, data_warnings, error_rows, warning_failure
from engine.actions.restore.upsert import Upsert
from engine.actions.restore.worker import Worker
from engine.errors import SqlError
from engine.model import SqlResult
from engine.transport.mysql import MysqlSession


class Redo(SqlError):
    """A LOAD DATA batch must be re-run by INSERT (to get the real error)."""

    def __init__(self) -> None:
        super().__init__("redo by INSERT", errno=None)


@dataclass
class Written:
    rows: int
    ignored: int
    load_data: bool
    warnings: list[ServerWarning] = field(default_factory=list)  # data warnings the step allowed


def write_batch(w: Worker, t: TablePlan, b: Batch, body: bytes, *, force_insert: bool, allow_warnings: bool) -> Written:
    if t.staged:
        return _staged(w, t, b, body, force_insert=force_insert, allow_warnings=allow_warnings)
    s = w.session()
    shape = t.shape
    conflict = shape.conflict
    if not force_insert and shape.uses_load_data(body):
        name = f"rb:{t.name}:{b.first}:{b.part}"
        r = s.load_local(shape.load_data_sql(name, b.newline_layout), name, load_data_payload(body, b.newline_layout))
        records, dup = counts(r.info, r.rowcount)
        if conflict == "error" and (dup or r.rowcount != records):
            raise Redo()  # LOCAL turned duplicates into warnings: the INSERT's 1062 names the key
        found = _checked(s, t, body, r.warnings, allow_warnings)
        if conflict == "replace":
            return Written(records, 0, True, found)
        return Written(r.rowcount, records - r.rowcount if conflict == "ignore" else 0, True, found)
    if t.via_temp:
        raise SqlError(f"{t.name}: a batch holds literals LOAD DATA cannot read exactly, and the target lacks some of the "
                       "dump's columns (common_columns)", hint="add the missing columns to the target, or use recreate")
    w.set_strict(not shape.has_generated)
    r = _insert(s, shape.insert(body, force_insert=force_insert), body)
    records, dup = counts(r.info, r.rowcount)
    found = _checked(s, t, body, r.warnings, allow_warnings)
    if conflict == "ignore" and not force_insert:
        return Written(r.rowcount, dup, False, found)
    if conflict == "replace" and not force_insert:
        return Written(records, 0, False, found)
    return Written(r.rowcount, 0, False, found)


def _insert(s: MysqlSession, statement: bytes, body: bytes) -> SqlResult:
    try:
        return s.query(statement)
    except SqlError as exc:
        if exc.errno in DATA_ERRORS:  # strict mode: name the rows
            raise SqlError(exc.message + error_rows(body, exc.message), errno=exc.errno, sqlstate=exc.sqlstate,
                           sql=exc.sql, hint=exc.hint) from None
        raise


def _checked(s: MysqlSession, t: TablePlan, body: bytes, count: int, allow: bool) -> list[ServerWarning]:
    """The batch's data warnings: a failure (the caller rolls back) unless the step allows them."""
    if not count:
        return []
    found = data_warnings(s.query("SHOW WARNINGS").rows, t.shape.conflict, generated=t.shape.has_generated)
    if found and not allow:
        raise warning_failure(t.name, found, body, len(found))
    return found


def _staged(w: Worker, t: TablePlan, b: Batch, body: bytes, *, force_insert: bool, allow_warnings: bool) -> Written:
    """Upsert: the batch into the temporary copy, conflicts on the other unique keys found, then
    the copy applied by identity (every column updated, new rows inserted)."""
    s = w.session()
    shape = t.shape
    up = Upsert(t.name, t.identity, tuple(c for c in shape.columns if c not in shape.skip), t.unique_keys)
    if up.stage not in w.stages:
        s.query(up.create_stage())
        w.stages.add(up.stage)
    s.query(up.clear_stage())
    if not force_insert and shape.uses_load_data(body):
        name = f"rb:{t.name}:{b.first}:{b.part}"
        r = s.load_local(shape.load_data_sql(name, b.newline_layout, table=up.stage, plain=True), name,
                         load_data_payload(body, b.newline_layout))
        records, dup = counts(r.info, r.rowcount)
        if dup or r.rowcount != records:
            raise Redo()
        via_load_data = True
    else:
        w.set_strict(not shape.has_generated)
        r = _insert(s, shape.insert(body, force_insert=True, table=up.stage), body)
        records, via_load_data = r.rowcount, False
    found = _checked(s, t, body, r.warnings, allow_warnings)
    for key_name, key in t.unique_keys:
        clash = s.query(up.collisions(key)).rows
        if clash:
            raise up.conflict(key_name, key, [dict(x) for x in clash])
    update = up.update()
    if update is not None:
        found += _checked(s, t, body, s.query(update).warnings, allow_warnings)
    found += _checked(s, t, body, s.query(up.insert_new()).warnings, allow_warnings)
    return Written(records, 0, via_load_data, found)
