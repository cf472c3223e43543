"""The dump behind a restore step: fetched to a plain local file (over SFTP, decompressed), read
once for the whole-file check and, in the same pass, cut into batches (the index). Every
refusal about the file itself is made here, before any write: a corrupt or truncated file,
statements a restore does not run (each with its line), more than one schema, requested tables
it does not have."""

from __future__ import annotations

from typing import Any

from engine.actions.restore.index import DumpIndex, IndexBuilder, TableIndex
from engine.errors import ActionError, RunbookError
from engine.mysql.dump import TableDef
from engine.mysql.dump.source import LocalDump, fetch_dump


def flag(args: dict[str, Any], key: str, default: bool) -> bool:
    v = args.get(key, default)
    return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")


class DumpSource:
    """The step's dump: ``scan`` (the check), ``index`` (batches and control statements),
    ``names`` (tables to restore), ``defs`` (their CREATE TABLEs), ``sequences``."""

    def __init__(self, args: dict[str, Any], ctx: Any):
        self.args, self.ctx = args, ctx
        self.names: list[str] = []
        self.sequences: set[str] = set()
        self.defs: dict[str, TableDef] = {}
        self.scan: Any = None
        self.index: DumpIndex | None = None
        self._dump: LocalDump | None = None
        self._opts: tuple[int, int | None] | None = None

    @property
    def path(self) -> str:
        return self.fetch().path

    def fetch(self) -> LocalDump:
        """The dump as a plain local file (copied over SFTP, decompressed), cached."""
        if self._dump is None:
            shell = None if self.args.get("file_on", "host") == "control" else self.ctx.shell()
            self._dump = fetch_dump(str(self.args["file"]), shell=shell)
        return self._dump

    def load(self, batch_bytes: int, split_bytes: int | None) -> Any:
        """The whole-file check and the batch index (cached for the same batching; a plain
        ``load`` with another batching reads the file again)."""
        if self.scan is not None and (self._opts == (batch_bytes, split_bytes) or split_bytes is None):
            return self.scan
        scan = self._read(batch_bytes, split_bytes or 8 << 20)
        self._opts = (batch_bytes, split_bytes)
        return scan

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None
        if self._dump is not None:
            self._dump.close()
            self._dump = None
        self.scan = None

    def _refuse(self, message: str, hint: str | None = None) -> ActionError:
        self.close()
        return ActionError(message, hint=hint)

    def _read(self, batch_bytes: int, split_bytes: int) -> Any:
        """One pass: the check (scan) feeds the index builder. Statements a restore does not run
        are refused here, each with its line. The pass guesses where the big INSERTs end and
        helper processes prove each guess (:mod:`engine.mysql.dump.prove`): the check uses both
        cores. It is trusted only once every guess is proven; else the file is read again
        without guessing."""
        from engine.mysql.dump.prove import Prover, Unproven

        for guess in (True, False):
            prover = None
            if guess:
                try:
                    prover = Prover(self.fetch().path)
                except OSError:  # no helper process (a process limit): the plain pass alone
                    continue
            builder: IndexBuilder | None = None
            try:
                scan, builder, by_offset = self._pass(batch_bytes, split_bytes, prover)
                inexact = prover.wait() if prover is not None else set()
            except RunbookError as exc:
                if builder is not None:
                    builder.discard()
                if prover is not None:  # a wrong guess can make a later statement look broken
                    try:
                        prover.wait()
                    except Unproven:
                        continue
                raise self._refuse(f"refusing {self.args['file']}: {exc.message}; nothing was written", exc.hint) from None
            except BaseException:
                if builder is not None:
                    builder.discard()
                raise
            finally:
                if prover is not None:
                    prover.close()
            if any(off not in by_offset for off in inexact):
                assert builder is not None
                builder.discard()
                continue  # which table holds it is unknown: read the file plainly
            for off in inexact:  # rows exact, but a literal LOAD DATA would read as text
                by_offset[off].load_data_safe = False
            return self._checked(scan, builder)
        raise AssertionError("the plain pass either returns or raises")

    def _pass(self, batch_bytes: int, split_bytes: int, prover: Any) -> tuple[Any, IndexBuilder, dict[int, Any]]:
        """The check's pass, feeding the index builder; ``by_offset``: the table of each statement
        the prover was given."""
        from engine.mysql.dump import DumpReader, scan_dump

        dump = self.fetch()
        wanted = set(self.args["tables"]) if self.args.get("tables") else None
        reader = DumpReader(dump.path)
        header_dbs = list(reader.header.databases or [])
        builder = IndexBuilder(wanted, batch_bytes=batch_bytes, split_bytes=split_bytes,
                               own_schema=header_dbs[0] if len(header_dbs) == 1 else None)
        guessed: dict[int, tuple[str | None, str]] = {}
        min_bytes = prover.min_bytes if prover is not None else 0
        if prover is not None:  # the row lists the prover hashed: the index keeps their digests
            builder.known = prover.bodies

        class _Tee(DumpReader):
            """The check's own pass also feeds the index: the dump is split once."""

            def statements(self, *, hash_file: bool = False) -> Any:
                for st in super().statements(hash_file=hash_file):
                    builder.feed(st)
                    if prover is not None and st.length >= min_bytes and st.rows >= 0:
                        guessed[st.offset] = (st.schema, st.table or "")
                    yield st

        tee = _Tee(dump.path)
        tee.prover = prover
        try:
            scan = scan_dump(tee, tables=None)
        except BaseException:
            builder.discard()
            raise
        tables = {(t.schema, t.name): t for t in scan.tables.values()}
        return scan, builder, {off: tables[key] for off, key in guessed.items() if key in tables}

    def _checked(self, scan: Any, builder: IndexBuilder) -> Any:
        from engine.mysql.dump import parse_create_table

        dump = self.fetch()
        if self.index is not None:
            self.index.close()
        self.index = index = builder.finish()
        if index.refused:
            refused = index.refused
            lines = _lines_of(dump.path, [r.offset for r in refused])
            raise self._refuse(f"refusing {self.args['file']}: statements a restore does not run (only the tables, rows,"
                               " keys, views, triggers, routines and events of the dump's own schema, and the session SETs"
                               " of names, time zone, sql_mode, checks and notes); nothing was written:\n  "
                               + "\n  ".join(f"line {ln}: {r.reason}" for ln, r in zip(lines, refused)),
                               hint="remove them from the dump (or restore it with the mysql client if you trust every"
                                    " statement in it)")
        dbs = list(dict.fromkeys(list(getattr(scan, "databases", None) or []) + list(scan.qualifiers)))
        if len(dbs) > 1:
            raise self._refuse(f"{self.args['file']} holds {len(dbs)} schemas ({', '.join(dbs)}); restore maps one schema",
                               hint="dump one schema per file (mariadb-dump DB or --databases DB)")
        names = [n for n, t in scan.tables.items() if not getattr(t, "is_view", False) and not getattr(t, "is_sequence", False)]
        self.sequences = {n for n, t in scan.tables.items() if getattr(t, "is_sequence", False)
                           and (not self.args.get("tables") or n in self.args["tables"]) and n not in (self.args.get("exclude_tables") or [])}
        wanted_list = list(self.args.get("tables") or names)
        missing = [t for t in wanted_list if t not in scan.tables]
        if missing:
            raise self._refuse(f"refusing {self.args['file']}: no table {', '.join(missing)} in the dump; nothing was written",
                               hint=f"the dump has: {', '.join(sorted(names)[:30])}")
        excluded = set(self.args.get("exclude_tables") or [])
        self.names = [t for t in wanted_list if t not in excluded and t in names]
        for n in self.names:
            create = scan.tables[n].create
            if create is None:
                raise self._refuse(f"refusing {self.args['file']}: the dump has rows for {n} but no CREATE TABLE; nothing was written",
                                   hint="take the dump without --no-create-info, or restore into existing tables with a dump that has them")
            self.defs[n] = create if hasattr(create, "columns") else parse_create_table(getattr(create, "text", b""))
            index.tables.setdefault(n, TableIndex(n))
        self.scan = scan
        return scan


def _lines_of(path: str, offsets: list[int]) -> list[int]:
    """1-based line numbers of byte offsets in a plain file (one read up to the last of them)."""
    out: dict[int, int] = {}
    line, pos = 1, 0
    with open(path, "rb") as f:
        for off in sorted(set(offsets)):
            while pos < off:
                chunk = f.read(min(1 << 20, off - pos))
                if not chunk:
                    break
                line += chunk.count(b"\n")
                pos += len(chunk)
            out[off] = line
    return [out[o] for o in offsets]
