"""Putting a server snapshot back: the swap, the repairs after it, and the check.

The copies of ``_rb_snap_<run id>`` replace the live tables with **one** ``RENAME TABLE``
(atomic: every table or none); the displaced live tables stay in the snapshot schema as
``<copy>__displaced`` (``__displaced2``, ... for later swaps of the same run: an undo never drops
data); a table recorded *absent* stays absent: one created since is moved aside the same way. Then what InnoDB's "FKs follow renames" leaves behind is repaired:

* copies made with ``LIKE`` have no FKs and no triggers → re-added from the manifest
  (``foreign_key_checks=0``: the data is exactly what it was when they held);
* tables *outside* the set whose FK pointed at a swapped table now point at the displaced one
  in the snapshot schema → re-pointed at the restored table;
* displaced tables' FKs to live parents would block deletes there (or cascade into the kept
  evidence) → dropped; FKs among displaced tables stay.

**Constraint names.** InnoDB's foreign key names are unique per *schema*: a live table renamed
into the snapshot schema takes its constraint names with it, and a second swap in the same run
(a stage rolled back twice, a resume after a rollback) would bring the same names again — the
server refuses that RENAME, reporting ERROR 1050 "table exists" for the table, not the names.
Before a RENAME, constraints of earlier displaced tables that hold a name the incoming tables
need are renamed (``<name>__<their table>``, unique since table names are); a clash with
anything else is refused naming both constraints.

Before the RENAME the generation of every replaced table is bumped
(:mod:`engine.mysql.generations`): a restore's progress rows describe the tables it loaded,
which are displaced now; its next attempt loads again.
"""

from __future__ import annotations

import json
from typing import Any

from engine.mysql.introspect import table_exists
from engine.actions.guard import sibling_session
from engine.errors import ActionError, SqlError
from engine.model import Status, StepResult
from engine.mysql.generations import bump
from engine.mysql.checksum import DIGEST_HEX_LEN, table_checksum
from engine.mysql.snapshots import MANIFEST, fit, fk_clause, foreign_keys, is_absent, table_shape, triggers
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql


class FkChecksOff:
    """``foreign_key_checks=0`` for this session, put back as it was (the session is shared)."""

    def __init__(self, sql: Sql):
        self.sql = sql

    def __enter__(self) -> None:
        self.before = self.sql.query("SELECT @@SESSION.foreign_key_checks AS v").rows[0]["v"]
        self.sql.query("SET SESSION foreign_key_checks = 0")

    def __exit__(self, *exc: object) -> None:
        self.sql.query("SET SESSION foreign_key_checks = %s", [int(self.before)])


def table_names(sql: Sql, schema: str) -> set[str]:
    return {str(r["t"]) for r in sql.query("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                                            [schema]).rows}


def settle_planned(sql: Sql, snap_schema: str, entries: list[dict[str, Any]]) -> None:
    """A swap planned by an undo that was killed: did its RENAME happen? The names say (the
    copy has left the snapshot schema), so the manifest catches up instead of every later undo
    failing on a copy that is missing because it is live."""
    planned = [m for m in entries if m["status"] == "swapping"]
    if not planned:
        return
    existing = table_names(sql, snap_schema)
    for m in planned:
        if is_absent(m):  # the RENAME took the created table away, or it did not
            if not table_exists(sql, m["source_schema"], m["source_table"]):
                mark_restored(sql, snap_schema, m)
        elif m["snap_table"] not in existing and table_exists(sql, m["source_schema"], m["source_table"]):
            mark_restored(sql, snap_schema, m)


def mark_restored(sql: Sql, snap_schema: str, m: dict[str, Any]) -> None:
    sql.query(f"UPDATE {qualified(snap_schema, MANIFEST)} SET status = 'restored', restored_at = CURRENT_TIMESTAMP(6)"
              " WHERE id = %s", [m["id"]])
    m["status"] = "restored"


def _constraints(sql: Sql, schema: str) -> dict[str, str]:
    """Foreign key name -> its table, for every FK of ``schema``."""
    res = sql.query("SELECT CONSTRAINT_NAME AS c, TABLE_NAME AS t FROM information_schema.REFERENTIAL_CONSTRAINTS"
                    " WHERE CONSTRAINT_SCHEMA = %s", [schema])
    return {str(r["c"]): str(r["t"]) for r in res.rows}


def _rename_constraint(sql: Sql, schema: str, table: str, name: str, taken: set[str]) -> str:
    """Give the FK ``name`` of ``schema.table`` a name of its own (drop and add in one ALTER,
    in place: ``foreign_key_checks`` is off, no row is read)."""
    new, n = fit(f"{name}__{table}"), 1
    while new in taken:
        n += 1
        new = fit(f"{name}__{table}{n}")
    fk = next(f for f in foreign_keys(sql, schema, table) if f["name"] == name)
    renamed = dict(fk, name=new)
    sql.query(f"ALTER TABLE {qualified(schema, table)} DROP FOREIGN KEY {quote_ident(name)}, ADD {fk_clause(renamed)}")
    return new


def free_constraint_names(sql: Sql, snap_schema: str, incoming: list[tuple[str, str]], copies: set[str]) -> None:
    """The FK names the tables about to be displaced into ``snap_schema`` carry must be free
    there: an earlier displaced table holding one gets it renamed; any other holder (a table
    that is no displaced evidence of ours) is refused, naming the clash."""
    have = _constraints(sql, snap_schema)
    taken = set(have)
    clashes: list[str] = []
    with FkChecksOff(sql):
        for schema, table in incoming:
            for fk in foreign_keys(sql, schema, table):
                holder = have.get(fk["name"])
                if holder is None:
                    continue
                if holder in copies or holder == MANIFEST:
                    clashes.append(f"constraint {quote_ident(fk['name'])} of {qualified(schema, table)} is also a constraint "
                                   f"of {qualified(snap_schema, holder)}")
                    continue
                new = _rename_constraint(sql, snap_schema, holder, fk["name"], taken)
                taken.add(new)
                have.pop(fk["name"])
                have[new] = holder
    if clashes:
        raise ActionError("cannot swap the snapshot back: foreign key names are unique per schema and "
                          + "; ".join(clashes) + " (MariaDB would report it as ERROR 1050 'table exists')",
                          hint=f"rename or drop that constraint in {snap_schema}, then run the rollback again")


def _explain_rename(exc: SqlError, sql: Sql, snap_schema: str, incoming: list[tuple[str, str]]) -> ActionError | None:
    """A RENAME refused with 1050/1005/121 because of a constraint name (the server names a
    table): say which constraint."""
    if exc.errno not in (1050, 1005, 121):
        return None
    have = _constraints(sql, snap_schema)
    clash = [f"{quote_ident(fk['name'])} of {qualified(schema, table)} (already held by {qualified(snap_schema, have[fk['name']])})"
             for schema, table in incoming for fk in foreign_keys(sql, schema, table) if fk["name"] in have]
    if not clash:
        return None
    return ActionError(f"the swap's RENAME was refused ({exc.message}): the real clash is the foreign key name "
                       + ", ".join(clash) + " — constraint names are unique per schema",
                       hint=f"rename that constraint in {snap_schema}, then run the rollback again")


def swap(sql: Sql, snap_schema: str, pending: list[dict[str, Any]], *, run_id: str, step_key: str) -> list[str]:
    """Swap the pending copies in place of the live tables; the source tables swapped."""
    pairs: list[str] = []
    displaced: dict[str, str] = {}
    existing = table_names(sql, snap_schema)
    incoming: list[tuple[str, str]] = []
    for m in pending:
        if m["snap_table"] not in existing and not is_absent(m):
            raise ActionError(f"snapshot copy {snap_schema}.{m['snap_table']} is missing: cannot restore {m['source_table']}")
        if table_exists(sql, m["source_schema"], m["source_table"]):
            name, n = m.get("displaced_table") or fit(f"{m['snap_table']}__displaced"), 1
            while name in existing or name in displaced.values():
                n += 1
                name = fit(f"{m['snap_table']}__displaced{n}")
            displaced[m["source_table"]] = name
            incoming.append((m["source_schema"], m["source_table"]))
            pairs.append(f"{qualified(m['source_schema'], m['source_table'])} TO {qualified(snap_schema, name)}")
    pairs += [f"{qualified(snap_schema, m['snap_table'])} TO {qualified(m['source_schema'], m['source_table'])}"
              for m in pending if not is_absent(m)]  # an absent table stays absent: nothing comes back
    free_constraint_names(sql, snap_schema, incoming, {m["snap_table"] for m in pending if not is_absent(m)})
    # The plan goes into the manifest before the RENAME: a crash in between leaves names
    # that settle_planned reads back (the RENAME happened or it did not, never half).
    for m in pending:
        sql.query(f"UPDATE {qualified(snap_schema, MANIFEST)} SET status = 'swapping', displaced_table = %s WHERE id = %s",
                  [displaced.get(m["source_table"]), m["id"]])
        m["status"], m["displaced_table"] = "swapping", displaced.get(m["source_table"])
    for schema in sorted({m["source_schema"] for m in pending}):
        bump(sql, schema, [m["source_table"] for m in pending if m["source_schema"] == schema], run_id=run_id, step_key=step_key)
    # A trigger pins its table to its schema (ERROR 1435 on a cross-schema RENAME): the
    # live tables' triggers go for the RENAME and are re-created on whichever table ends
    # up live — the restored copy gets the snapshot's (from the manifest, in repair), the
    # current table gets its own back if the RENAME fails.
    dropped: list[tuple[str, list[dict[str, Any]]]] = []
    for m in pending:
        if m["source_table"] in displaced:
            trgs = triggers(sql, m["source_schema"], m["source_table"])
            for trg in trgs:
                sql.query(f"DROP TRIGGER {qualified(m['source_schema'], trg['name'])}")
            dropped.append((m["source_schema"], trgs))
    try:
        if pairs:
            sql.query("RENAME TABLE " + ", ".join(pairs))  # one statement: every table or none
    except Exception as exc:
        for schema, trgs in dropped:
            if trgs:
                create_triggers(sql, schema, trgs)
        better = _explain_rename(exc, sql, snap_schema, incoming) if isinstance(exc, SqlError) else None
        if better is not None:
            raise better from None
        raise
    for m in pending:
        mark_restored(sql, snap_schema, m)
    return [m["source_table"] for m in pending]


def repair(sql: Sql, snap_schema: str, entries: list[dict[str, Any]]) -> None:
    live_of = {m["displaced_table"]: (m["source_schema"], m["source_table"]) for m in entries if m.get("displaced_table")}
    # 1. Tables outside the snapshot whose FK followed a swapped parent into the snapshot schema.
    outside = sql.query("SELECT DISTINCT CONSTRAINT_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.REFERENTIAL_CONSTRAINTS"
                        " WHERE UNIQUE_CONSTRAINT_SCHEMA = %s AND CONSTRAINT_SCHEMA <> %s", [snap_schema, snap_schema])
    for r in outside.rows:
        for fk in foreign_keys(sql, str(r["s"]), str(r["t"])):
            if fk["ref_schema"] == snap_schema and fk["ref_table"] in live_of:
                to_schema, to_table = live_of[fk["ref_table"]]
                sql.query(f"ALTER TABLE {qualified(str(r['s']), str(r['t']))} DROP FOREIGN KEY {quote_ident(fk['name'])}")
                sql.query(f"ALTER TABLE {qualified(str(r['s']), str(r['t']))} ADD {fk_clause(fk, to_schema, to_table)}")
    # 2. Displaced tables must not hold live parents (RESTRICT would block, CASCADE would edit them).
    for name in live_of:
        for fk in foreign_keys(sql, snap_schema, name):
            if fk["ref_schema"] != snap_schema:
                sql.query(f"ALTER TABLE {qualified(snap_schema, name)} DROP FOREIGN KEY {quote_ident(fk['name'])}")
    # 3. Restored copies get back their FKs and triggers as they were at snapshot time.
    for m in entries:
        if m["status"] != "restored" or is_absent(m):
            continue
        definition = json.loads(m["definition"] or "{}")
        have = {fk["name"] for fk in foreign_keys(sql, m["source_schema"], m["source_table"])}
        for fk in definition.get("foreign_keys", []):
            if fk["name"] not in have:
                sql.query(f"ALTER TABLE {qualified(m['source_schema'], m['source_table'])} ADD {fk_clause(fk)}")
        have_trg = {t["name"] for t in triggers(sql, m["source_schema"], m["source_table"])}
        missing = [t for t in definition.get("triggers", []) if t["name"] not in have_trg]
        if missing:
            create_triggers(sql, m["source_schema"], missing)


def create_triggers(sql: Sql, schema: str, trgs: list[dict[str, Any]]) -> None:
    # The statements name their table unqualified: run them in a session whose default
    # database is the schema, not in the shared session (USE would leak into later steps).
    session = sibling_session(sql, database=schema)
    try:
        for t in trgs:
            session.query("SET SESSION sql_mode = %s", [t["sql_mode"]])
            session.query(t["statement"])
    finally:
        session.close()


def verify(sql: Sql, entries: list[dict[str, Any]], swapped: list[str]) -> StepResult:
    results: dict[str, Any] = {}
    bad: list[str] = []
    warnings: list[str] = []
    for m in entries:
        if is_absent(m):  # the way back is "no such table"
            there = table_exists(sql, m["source_schema"], m["source_table"])
            results[m["source_table"]] = {"absent": True, "ok": not there, "displaced_table": m.get("displaced_table")}
            if there:
                bad.append(f"{m['source_table']} exists, but it did not when the snapshot was taken")
            continue
        rows, checksum = table_checksum(sql, table_shape(sql, m["source_schema"], m["source_table"]))
        # A manifest written before the digest became SHA1-based holds an 8-digit CRC32
        # XOR: it cannot be compared with today's digest, only the row count can.
        legacy = len(m["checksum"] or "") != DIGEST_HEX_LEN
        ok = rows == m["rows"] and (legacy or checksum == m["checksum"])
        results[m["source_table"]] = {"rows": rows, "checksum": checksum, "expected_rows": m["rows"],
                                      "expected_checksum": m["checksum"], "ok": ok, "displaced_table": m.get("displaced_table")}
        if legacy:
            warnings.append(f"{m['source_table']}: the snapshot was summed by an earlier runbook version;"
                            " only its row count was compared")
        if not ok:
            bad.append(f"{m['source_table']} ({rows} rows, checksum {checksum}; snapshot had {m['rows']}, {m['checksum']})")
    data = {"tables": results, "swapped": swapped}
    if bad:
        return StepResult(Status.FAILED, msg="restored tables differ from the snapshot: " + "; ".join(bad), data=data,
                          warnings=warnings)
    if not swapped:
        return StepResult(Status.OK, msg="snapshot already restored; checksums match", data=data, warnings=warnings)
    return StepResult(Status.CHANGED, msg=f"restored {len(swapped)} table(s) from the snapshot; checksums match", data=data,
                      warnings=warnings)
