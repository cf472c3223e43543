"""``snapshot``: a rollback copy of tables before a restore touches them, and its undo.

Server method: ``CREATE TABLE <snap> LIKE <table>`` in ``_rb_snap_<run id>``, then
``INSERT … SELECT`` in primary-key chunks, each chunk digested (:mod:`engine.mysql.checksum`) as it lands.
Dump method: ``mariadb-dump``/``mysqldump`` to a file on the host. Either way the manifest
records rows, checksum, foreign keys and triggers at snapshot time.

The undo (:mod:`engine.actions.snapshot.swap`) swaps the copies back with one atomic ``RENAME
TABLE`` (the displaced live tables are kept as evidence), repairs foreign keys and triggers, and
checks every restored table against the manifest: a mismatch fails.

A listed table that does not exist (the classic P0: it was dropped) is recorded as *absent*
(its manifest definition says so, no copy is made): the state to go back to is "no such
table". Undo moves a table created since (by the restore) into the snapshot schema as
``<copy>__displaced`` in the same atomic RENAME, and verifies the table is gone again.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, ClassVar

from engine.mysql.introspect import table_exists
from engine.actions.base import Action, Probe, register
from engine.actions.disk_space import assess
from engine.actions.snapshot import swap
from engine.actions.guard import as_bool, check_identity, global_variables, session_settings, sibling_session
from engine.errors import ActionError
from engine.model import Status, StepResult
from engine.language.sizes import PERCENT_SCHEMA
from engine.mysql.snapshots import (
    ABSENT,
    MANIFEST,
    MANIFEST_DDL,
    base_tables,
    definition_json,
    foreign_keys,
    is_absent,
    manifest_rows,
    pk_chunks,
    snap_table_name,
    snapshot_schema,
    table_shape,
    triggers,
)
from engine.mysql.checksum import NO_ROWS, Digest, chunk_digest, table_checksum
from engine.mysql.sqlutil import qualified, quote_ident
from engine.transport.base import Sql


@register
class Snapshot(Action):
    """Copy tables aside before changing them; undo puts them back atomically.

    ```yaml
    - name: Snapshot before restore
      snapshot: {schema: shop, tables: [users, orders]}        # server-side copy
    - snapshot: {schema: shop, method: dump, path: /backups/pre-restore.sql}
    ```

    Registers ``snapshot_schema``, ``method``, ``tables`` (per table: ``rows``, ``checksum``,
    ``snap_table``), ``bytes`` and ``disk`` (the pre-flight space check). List and drop
    snapshots with ``runbook snapshots list`` / ``runbook snapshots drop RUN_ID``.
    """

    name = "snapshot"
    mutating = True
    idempotent = True
    reversible = True
    undo_idempotent = True  # by the state it finds (names, the fence)
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["schema"],
        "properties": {
            "schema": {"type": "string", "minLength": 1, "description": "the schema whose tables are copied"},
            "tables": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                       "description": "tables to copy (default: every base table of the schema)"},
            "method": {"enum": ["server", "dump"], "description": "server: copy into _rb_snap_<run> (default); dump: mariadb-dump to path"},
            "path": {"type": "string", "minLength": 1, "description": "dump file on the host (method: dump)"},
            "chunk_rows": {"type": "integer", "minimum": 1, "description": "rows per INSERT … SELECT chunk (default 50000)"},
            "parallel": {"type": "integer", "minimum": 1, "maximum": 16,
                         "description": "sessions copying chunks at once (default 2; the server does the work)"},
            "margin": dict(PERCENT_SCHEMA, description="free-space margin of the pre-flight check (default 10%)"),
        },
        "if": {"properties": {"method": {"const": "dump"}}, "required": ["method"]},
        "then": {"required": ["path"]},
    }

    # -- helpers -------------------------------------------------------------------------
    @property
    def _schema(self) -> str:
        return snapshot_schema(self.ctx.run_id)

    def _tables(self, sql: Sql) -> list[str]:
        a = self.args
        tables = list(a.get("tables") or base_tables(sql, a["schema"]))
        if not tables:
            raise ActionError(f"schema {quote_ident(a['schema'])} has no tables to snapshot")
        return tables

    def _manifest(self, sql: Sql) -> dict[tuple[str, str], dict[str, Any]]:
        if not table_exists(sql, self._schema, MANIFEST):
            return {}
        return {(m["source_schema"], m["source_table"]): m for m in manifest_rows(sql, self._schema)
                if m["step_key"] == self.ctx.step_key}

    # -- contract ------------------------------------------------------------------------
    def probe(self) -> Probe:
        sql = self.ctx.sql()
        tables = self._tables(sql)
        done = self._manifest(sql)
        # Only a complete copy counts: a 'restored' one was swapped back in by an undo and is
        # the live table now, so a re-run after a rollback must copy again.
        todo = [t for t in tables if done.get((self.args["schema"], t), {}).get("status") != "complete"]
        state = {"snapshot_schema": self._schema, "tables_done": len(tables) - len(todo), "tables": tables}
        if not todo:
            return Probe(True, state, "snapshot already taken for this run")
        return Probe(False, state, f"copy {len(todo)} table(s) of {self.args['schema']} into {self._schema}")

    def _undo_record(self, tables: list[str]) -> dict[str, Any]:
        return {"run_id": self.ctx.run_id, "snapshot_schema": self._schema, "step_key": self.ctx.step_key,
                "schema": self.args["schema"], "tables": tables, "method": self.args.get("method", "server")}

    def undo_of_found(self, probe: Probe) -> Any:
        # The snapshot schema is this run's own: complete copies in it were made by this run
        # (an attempt killed before its outcome), and this is the record its apply returns.
        return self._undo_record(list(probe.state["tables"])) if probe.state.get("tables_done") else None

    def result_of_found(self, probe: Probe) -> dict[str, Any]:
        """What ``apply`` registers, rebuilt from this run's manifest (rows, checksum and copy
        of each table, the copies' size): ``snap.tables.orders.rows`` reads the same after a
        resume that found the snapshot taken as after the run that took it."""
        sql = self.ctx.sql()
        done = self._manifest(sql)
        tables: dict[str, Any] = {}
        method = self.args.get("method", "server")
        size = 0
        for t in probe.state.get("tables") or []:
            m = done.get((self.args["schema"], t))
            if m is None:
                continue
            method = m["method"]
            if is_absent(m):
                tables[t] = {"rows": 0, "checksum": None, "snap_table": None, "absent": True}
                continue
            tables[t] = {"rows": m["rows"], "checksum": m["checksum"], "snap_table": m["snap_table"]}
            if method == "server":
                got = sql.query("SELECT DATA_LENGTH + INDEX_LENGTH AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                                " AND TABLE_NAME = %s", [self._schema, m["snap_table"]]).rows
                size += int(got[0]["b"] or 0) if got else 0
        return {"snapshot_schema": self._schema, "method": method, "tables": tables, "bytes": size, "disk": {}}

    def apply(self) -> StepResult:
        a, sql, ctx = self.args, self.ctx.sql(), self.ctx
        schema, method = a["schema"], a.get("method", "server")
        ident = check_identity(ctx, f"snapshot {schema}")
        tables = self._tables(sql)
        absent = [t for t in tables if not table_exists(sql, schema, t)]
        v = global_variables(sql, ["datadir", "read_only", "super_read_only"])
        if as_bool(v["super_read_only"]) and method == "server":
            # MySQL's super_read_only stops the engine's own account too; say so before copying.
            raise ActionError("super_read_only is ON: the snapshot copy cannot be written",
                              hint="keep read_only but lift super_read_only for the recovery: "
                                   "resume_writes: {to: {read_only: true, super_read_only: false}}")
        where = (v["datadir"] or "/var/lib/mysql") if method == "server" else (os.path.dirname(a["path"]) or ".")
        present = [t for t in tables if t not in absent]
        need: dict[str, Any] = {"need_for_snapshot": {"schema": schema, "tables": present}} if present else {"need": 0}
        disk = assess(ctx, {"path": where, **need, "margin": a.get("margin", "10%"), "binlog": method == "server"})
        if disk.status is Status.FAILED:
            return StepResult(Status.FAILED, msg=f"snapshot would not fit: {disk.msg}", data={"disk": disk.data})
        warnings = list(disk.warnings)
        if absent:
            warnings.append(f"{', '.join(qualified(schema, t) for t in absent)} does not exist: recorded as absent "
                            "(nothing to copy; undo removes a table of that name created since, keeping it aside)")
        if not as_bool(v["read_only"]):
            warnings.append("writes are not stopped: rows may change between chunks (run stop_writes first)")
        sql.query(f"CREATE DATABASE IF NOT EXISTS {quote_ident(self._schema)}")
        sql.query(MANIFEST_DDL.format(table=qualified(self._schema, MANIFEST)))
        if method == "dump":
            results = self._dump(sql, schema, tables, ident)
        else:
            workers = [sql] + [sibling_session(sql) for _ in range(int(a.get("parallel", 2)) - 1)]
            try:
                results = {t: (self._absent(sql, schema, t, ident) if t in absent else
                               self._copy(sql, schema, t, ident, int(a.get("chunk_rows", 50000)), workers)) for t in tables}
            finally:
                for w in workers[1:]:
                    w.close()
        size = sum(int(r.pop("bytes", 0)) for r in results.values())
        undo = self._undo_record(tables)
        rows = sum(r["rows"] for r in results.values())
        gone = f" ({len(absent)} absent: {', '.join(absent)})" if absent else ""
        return StepResult(Status.CHANGED, msg=f"{len(tables)} table(s){gone}, {rows} rows copied to {self._schema if method == 'server' else a['path']}",
                          data={"snapshot_schema": self._schema, "method": method, "tables": results, "bytes": size, "disk": disk.data},
                          undo=undo, warnings=warnings)

    def _record(self, sql: Sql, schema: str, table: str, snap: str, ident: dict[str, Any], method: str,
                absent: bool = False) -> None:
        definition = (definition_json([], [], absent=True) if absent
                      else definition_json(foreign_keys(sql, schema, table), triggers(sql, schema, table)))
        sql.query(
            f"INSERT INTO {qualified(self._schema, MANIFEST)} (run_id, step_key, host, method, source_schema, source_table,"
            " snap_table, dump_path, status, definition, hostname, server_uuid, server_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'copying', %s, %s, %s, %s)"
            " ON DUPLICATE KEY UPDATE status = 'copying', definition = VALUES(definition), created_at = CURRENT_TIMESTAMP(6),"
            " restored_at = NULL, displaced_table = NULL",
            [self.ctx.run_id, self.ctx.step_key, self.ctx.host.name, method, schema, table, snap,
             self.args.get("path"), definition, ident["hostname"], ident["server_uuid"], ident["server_id"]])

    def _complete(self, sql: Sql, schema: str, table: str, rows: int, checksum: str) -> None:
        sql.query(f"UPDATE {qualified(self._schema, MANIFEST)} SET status = 'complete', `rows` = %s, checksum = %s,"
                  " completed_at = CURRENT_TIMESTAMP(6) WHERE step_key = %s AND source_schema = %s AND source_table = %s",
                  [rows, checksum, self.ctx.step_key, schema, table])

    def _absent(self, sql: Sql, schema: str, table: str, ident: dict[str, Any]) -> dict[str, Any]:
        """A listed table that does not exist: the manifest says so, nothing is copied."""
        prior = self._manifest(sql).get((schema, table))
        taken = {m["snap_table"] for m in manifest_rows(sql, self._schema)}
        snap = prior["snap_table"] if prior else snap_table_name(schema, table, taken, self.ctx.step_key)
        self._record(sql, schema, table, snap, ident, "server", absent=True)
        self._complete(sql, schema, table, 0, ABSENT)
        return {"rows": 0, "checksum": None, "snap_table": None, "absent": True}

    def _copy_chunks(self, workers: list[Sql], insert: str, snap: str, shape: Any, chunks: list[tuple[str, list[Any]]],
                     total: int, label: str) -> Digest:
        """Copy and digest primary-key chunks, one session per worker thread. Chunks are
        disjoint and chunk digests add up, so the order they land in does not matter; the
        server does the work, so two sessions use two cores."""
        import threading

        pending = iter(chunks)
        lock = threading.Lock()
        state = {"digest": NO_ROWS}
        errors: list[BaseException] = []

        def work(session: Sql) -> None:
            while True:
                with lock:
                    item = None if errors else next(pending, None)
                if item is None:
                    return
                cond, params = item
                try:
                    session.query(insert + cond, params)
                    d = chunk_digest(session, shape, cond, params, schema=self._schema, table=snap)
                except BaseException as exc:  # re-raised in the calling thread below
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    state["digest"] += d
                    done = state["digest"].rows
                self.ctx.progress(done, max(total, done), label)

        if len(workers) == 1 or len(chunks) == 1:
            work(workers[0])
        else:
            threads = [threading.Thread(target=work, args=(w,), name=f"snapshot-{i}", daemon=True) for i, w in enumerate(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if errors:
            raise errors[0]
        return state["digest"]

    def _copy(self, sql: Sql, schema: str, table: str, ident: dict[str, Any], chunk_rows: int,
              workers: list[Sql]) -> dict[str, Any]:
        prior = self._manifest(sql).get((schema, table))
        if prior and prior["status"] == "complete":
            return {"rows": prior["rows"], "checksum": prior["checksum"], "snap_table": prior["snap_table"]}
        taken = {m["snap_table"] for m in manifest_rows(sql, self._schema)}
        snap = prior["snap_table"] if prior else snap_table_name(schema, table, taken, self.ctx.step_key)
        self._record(sql, schema, table, snap, ident, "server")
        sql.query(f"DROP TABLE IF EXISTS {qualified(self._schema, snap)}")  # a half copy from a crash
        sql.query(f"CREATE TABLE {qualified(self._schema, snap)} LIKE {qualified(schema, table)}")
        shape = table_shape(sql, schema, table)
        cols = ", ".join(quote_ident(c) for c in shape.columns)
        total = int(sql.query("SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                              [schema, table]).rows[0]["n"] or 0)
        insert = f"INSERT INTO {qualified(self._schema, snap)} ({cols}) SELECT {cols} FROM {qualified(schema, table)} WHERE "
        digest = self._copy_chunks(workers, insert, snap, shape, list(pk_chunks(sql, shape, chunk_rows)), total,
                                   f"snapshot {schema}.{table}")
        rows, checksum = digest.rows, digest.hex
        self._complete(sql, schema, table, rows, checksum)
        size = sql.query("SELECT DATA_LENGTH + INDEX_LENGTH AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                         " AND TABLE_NAME = %s", [self._schema, snap]).rows[0]["b"]
        return {"rows": rows, "checksum": checksum, "snap_table": snap, "bytes": int(size or 0)}

    # -- dump method ---------------------------------------------------------------------
    def _with_defaults(self, cmd: str) -> Any:
        """Run ``cmd`` with ``$RB_DEFAULTS`` naming a 0600 client option file holding the password
        (never on a command line, where ``ps`` would show it)."""
        shell, s = self.ctx.shell(), session_settings(self.ctx.sql())
        from engine.secrets import reveal

        text = "[client]\n" + (f"password={reveal(s.password)}\n" if s.password is not None else "")
        made = shell.run("umask 077 && f=$(mktemp) && cat > \"$f\" && printf '%s' \"$f\"", stdin=text)
        if made.rc != 0:
            raise ActionError(f"cannot write a client option file on {self.ctx.host.name}: {made.stderr.strip()}")
        path = made.stdout.strip()
        try:
            return shell.run(f"RB_DEFAULTS={shlex.quote(path)}; " + cmd)
        finally:
            shell.run(f"rm -f -- {shlex.quote(path)}")

    def _client_args(self) -> str:
        s = session_settings(self.ctx.sql())
        out = f'--defaults-extra-file="$RB_DEFAULTS" -h {shlex.quote(s.host)} -P {int(s.port)}'
        return out + (f" -u {shlex.quote(str(s.user))}" if s.user else "")

    def _dump(self, sql: Sql, schema: str, tables: list[str], ident: dict[str, Any]) -> dict[str, Any]:
        path = self.args["path"]
        results: dict[str, Any] = {}
        present = [t for t in tables if table_exists(sql, schema, t)]
        for t in tables:
            if t not in present:
                self._record(sql, schema, t, t, ident, "dump", absent=True)
                self._complete(sql, schema, t, 0, ABSENT)
                results[t] = {"rows": 0, "checksum": None, "snap_table": None, "absent": True}
        tables = present
        if not tables:
            return results
        for t in tables:  # definitions and sums first: the manifest must exist before the file
            self._record(sql, schema, t, t, ident, "dump")
            rows, checksum = table_checksum(sql, table_shape(sql, schema, t))
            results[t] = {"rows": rows, "checksum": checksum, "snap_table": t}
        # --skip-triggers: triggers come back from the manifest (a trigger would pin the loaded
        # copy to its schema and block the cross-schema RENAME of the undo).
        cmd = (f'D=$(command -v mariadb-dump || command -v mysqldump) && mkdir -p -- {shlex.quote(os.path.dirname(path) or ".")}'
               f' && "$D" {self._client_args()} --single-transaction --skip-triggers --hex-blob --no-tablespaces'
               f" {shlex.quote(schema)} {' '.join(shlex.quote(t) for t in tables)} > {shlex.quote(path)}")
        res = self._with_defaults(cmd)
        if res.rc != 0:
            raise ActionError(f"dump failed (exit {res.rc}): {res.stderr.strip()[-400:]}", hint="check the path and the client tools on the host")
        for t in tables:
            self._complete(sql, schema, t, results[t]["rows"], results[t]["checksum"])
        size = self.ctx.shell().run(f"wc -c < {shlex.quote(path)}")
        results[tables[0]]["bytes"] = int(size.stdout.split()[0]) if size.rc == 0 else 0
        return results

    def _load_dump(self, sql: Sql, entries: list[dict[str, Any]]) -> None:
        """Load a dump snapshot into the snapshot schema, as plain copies (no FKs), for the swap."""
        path = entries[0]["dump_path"]
        res = self._with_defaults(f'C=$(command -v mariadb || command -v mysql) && "$C" {self._client_args()}'
                                  f" {shlex.quote(self._schema)} < {shlex.quote(path)}")
        if res.rc != 0:
            raise ActionError(f"cannot load the snapshot dump {path}: {res.stderr.strip()[-400:]}")
        for m in entries:
            for fk in foreign_keys(sql, self._schema, m["snap_table"]):
                sql.query(f"ALTER TABLE {qualified(self._schema, m['snap_table'])} DROP FOREIGN KEY {quote_ident(fk['name'])}")

    # -- undo ----------------------------------------------------------------------------
    def undo(self, record: Any) -> StepResult:
        sql, ctx = self.ctx.sql(), self.ctx
        snap_schema = record["snapshot_schema"]
        ident = check_identity(ctx, f"restore the snapshot of {record['schema']}")
        if not table_exists(sql, snap_schema, MANIFEST):
            raise ActionError(f"snapshot {snap_schema} is gone: nothing to restore from")
        entries = [m for m in manifest_rows(sql, snap_schema) if m["step_key"] == record["step_key"]
                   and m["source_schema"] == record["schema"] and m["source_table"] in record["tables"]]
        taken_on = {k: entries[0][k] for k in ("hostname", "server_uuid", "server_id")} if entries else ident
        if entries and any(taken_on[k] is not None and str(taken_on[k]) != str(ident[k]) for k in taken_on):
            raise ActionError(f"refusing to restore on {ctx.host.name}: the snapshot was taken on {taken_on}, this server is {ident}")
        swap.settle_planned(sql, snap_schema, entries)
        pending = [m for m in entries if m["status"] != "restored"]
        copies = [m for m in pending if not is_absent(m)]
        if copies and copies[0]["method"] == "dump" and not all(table_exists(sql, snap_schema, m["snap_table"]) for m in copies):
            self._load_dump(sql, copies)
        swapped = swap.swap(sql, snap_schema, pending, run_id=ctx.run_id, step_key=ctx.step_key) if pending else []
        with swap.FkChecksOff(sql):
            swap.repair(sql, snap_schema, entries)
        return swap.verify(sql, entries, swapped)
