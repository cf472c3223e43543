"""The whole-file check's guesses (engine/mysql/dump/prove.py): a big INSERT's end is guessed at its
first ";\\n" and proven by helper processes running the reader's own match. A proven guess must
change nothing; an unproven one must make the restore read the file again without guessing."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest


from engine.actions.restore.index import DumpChanged
from engine.actions.restore.source import DumpSource
from engine.mysql.dump import DumpError, DumpReader, Kind, scan_dump
from engine.mysql.dump.prove import Prover, Unproven, prove
from tests.unit.dumpfuzz import mangle

HEADER = (b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n"
          b"-- Host: 127.0.0.1    Database: shop\n\n/*!40101 SET NAMES utf8mb4 */;\n")
TRAILER = b"\n-- Dump completed on 2026-11-30  4:43:02\n"
CREATE = b"CREATE TABLE `%s` (`id` int NOT NULL, `v` varchar(40), `b` blob, PRIMARY KEY (`id`));\n"


def insert(table: bytes, rows: list[bytes]) -> bytes:
    return b"INSERT INTO `" + table + b"` VALUES\n" + b",\n".join(rows) + b";\n"


def big_dump(n: int = 6000, *, strange: bytes | None = None, hex_table: bool = False) -> bytes:
    """Two INSERTs of ≈ 100 KB into ``a`` (``strange``: the last row but nine); ``hex_table``:
    and one of ``h`` with hex literals."""
    rows = [b"(%d,'name %d; it\\'s ok',NULL)" % (i, i) for i in range(n)]
    if strange is not None:
        rows[-10] = strange
    out = HEADER + CREATE % b"a" + insert(b"a", rows[: n // 2]) + insert(b"a", rows[n // 2:])
    if hex_table:
        out += CREATE % b"h" + insert(b"h", [b"(%d,'x',0x%04X)" % (i, i) for i in range(n)])
    return out + TRAILER


class InProcess:
    """Proves guesses in this process with the helpers' own function (the equivalence test runs
    hundreds of files: one helper process each would be slow)."""

    min_bytes = 1

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.subs: list[tuple[int, int, int]] = []

    def submit(self, offset: int, length: int, values_at: int, text: Any) -> None:
        assert bytes(text) + b";" == self.data[offset:offset + length]  # the reader's own bytes
        self.subs.append((offset, length, values_at))

    def wait(self) -> set[int]:
        verdicts = {off: prove(self.data[off:off + n], va) for off, n, va in self.subs}
        if "bad" in verdicts.values():
            raise Unproven("unproven")
        return {off for off, v in verdicts.items() if v == "x"}


def statements(path: Path, prover: Any) -> tuple[list[tuple[Any, ...]], str | None, set[int]]:
    r = DumpReader(path)
    r.prover = prover
    out: list[tuple[Any, ...]] = []
    err = None
    try:
        for st in r.statements(hash_file=True):
            out.append((st.kind, st.text, st.offset, st.length, st.rows, st.values_at, st.load_data_safe, st.table, st.ordinal))
        out.append(("tail", r.tail, r.source.sha256 if r.source else ""))
    except DumpError as exc:
        err = exc.message
    inexact = prover.wait() if prover is not None else set()
    return out, err, inexact


def test_a_proven_guess_changes_nothing(tmp_path: Path) -> None:
    """Random damage to a dump with big INSERTs: whenever every guess is proven, the guessing pass
    gives the very statements (and the very error) of the plain pass; a statement proven with hex
    literals is reported, and was LOAD DATA safe nowhere but in the guess."""
    base = (HEADER + CREATE % b"p" + insert(b"p", [b"(%d,'a;b',NULL)" % i for i in range(30)])
            + b"INSERT INTO `p` VALUES\n(100,'x',0x41),\n(101,'y;\\nz',NULL);\n"
            + b"INSERT INTO p VALUES (200,'one line'),(201,'x');\nDELIMITER ;;\nCREATE PROCEDURE x() BEGIN SELECT ';;'; END;;\n"
            + b"DELIMITER ;\n" + insert(b"p", [b"(%d,'it\\'s',-1.5e3)" % i for i in range(300, 340)]) + TRAILER)
    pieces = [b"'", b'"', b"`", b"/*", b"*/", b"-- ", b"#", b";", b";\n", b"\\", b"DELIMITER ;;\n", b"(", b")", b",", b"\n",
              b"0x1F", b"DEFAULT", b"INSERT INTO `p` VALUES\n(", b"\x00", b"\xff", b"),\n("]
    rnd = random.Random(20261207)
    proven = unproven = 0
    path = tmp_path / "d.sql"
    for case in range(400):
        d = mangle(base, pieces, rnd, edits=(0 if case < 5 else 1, 4), insert=0.6, delete=0.8)
        path.write_bytes(d)
        plain = statements(path, None)
        try:
            guessed = statements(path, InProcess(path))
        except Unproven:
            unproven += 1
            continue
        proven += 1
        got, err, inexact = guessed
        want, want_err, _ = plain
        for off in inexact:  # the restore marks their tables not LOAD DATA safe (DumpSource._read)
            got = [(*s[:6], False, *s[7:]) if s[0] != "tail" and s[2] == off else s for s in got]
        assert (got, err) == (want, want_err), d
    assert proven > 100 and unproven > 10


def test_the_restore_check_guesses_then_reads_again_when_a_guess_is_wrong(tmp_path: Path) -> None:
    """Real helper processes: an ordinary dump is proven (same scan as the plain reader); a big
    INSERT whose string holds ";\\n" (a hand-written file) is not, and the check reads it again;
    hex literals make their table not LOAD DATA safe."""
    cases = {
        "plain": big_dump(),
        "newline": big_dump(strange=b"(999999,'semi;\ncolon',NULL)"),
        "hex": big_dump(hex_table=True),
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.sql"
        path.write_bytes(data)
        want = scan_dump(str(path))
        r = DumpReader(str(path))
        p = r.prover = Prover(str(path))
        try:
            try:
                scan_dump(r)
            except DumpError:
                assert name == "newline"  # the guess ended inside the string: the rest is out of step
            if name == "newline":
                with pytest.raises(Unproven):
                    p.wait()
            else:
                inexact = p.wait()
                assert bool(inexact) is (name == "hex")
        finally:
            p.close()
        src = DumpSource({"file": str(path), "file_on": "control"}, None)
        try:
            got = src.load(1 << 18, 8 << 20)
            assert {k: (t.rows, t.load_data_safe, t.data_bytes) for k, t in got.tables.items()} \
                == {k: (t.rows, t.load_data_safe, t.data_bytes) for k, t in want.tables.items()}, name
            assert got.sha256 == want.sha256 and (name != "hex" or not got.tables["h"].load_data_safe)
            # the two INSERTs of a (≈ 100 KB each) are one batch of 256 KiB, read from the dump itself
            assert src.index is not None
            (batch,) = src.index.tables["a"].batches
            assert len(batch.segments) == 2 and not batch.side
            bodies = [st.text[st.values_at:] for st in DumpReader(str(path)).statements() if st.table == "a" and st.kind is Kind.DATA]
            with open(path, "rb") as f:
                assert batch.read({False: f.fileno()}) == b",\n".join(bodies)
        finally:
            src.close()


def test_a_refusal_after_a_wrong_guess_is_judged_by_the_plain_pass(tmp_path: Path) -> None:
    """A wrong guess desynchronises the rest of the pass (here the string's end is read as the
    start of an unterminated quote): the check must not refuse a good file for it."""
    rows = [b"(%d,'v',NULL)" % i for i in range(6000)]
    rows[10] = b"(10,'a;\nb',NULL)"  # the guess ends the INSERT inside this string
    data = HEADER + CREATE % b"a" + insert(b"a", rows) + TRAILER
    path = tmp_path / "d.sql"
    path.write_bytes(data)
    src = DumpSource({"file": str(path), "file_on": "control"}, None)
    try:
        assert src.load(1 << 20, 8 << 20).tables["a"].rows == 6000
    finally:
        src.close()


def test_the_guess_finds_a_statement_end_as_bytes_find_does() -> None:
    """The guess's search for ";\\n" (memchr of the ";", then a look at the next byte; back to the
    plain search after a run of lone ";") answers as ``bytes.find`` does, window ends included."""
    from engine.mysql.dump.split import _statement_end

    rnd = random.Random(20261208)
    for _ in range(3000):
        n = rnd.randrange(0, 40)
        buf = bytes(rnd.choice(b";;;\n\nab") for _ in range(n))
        start = rnd.randrange(0, n + 2)
        end = rnd.choice([None, rnd.randrange(0, n + 3)])
        want = buf.find(b";\n", start) if end is None else buf.find(b";\n", start, end)
        assert _statement_end(buf, start, end) == want, (buf, start, end)


def test_a_helper_that_reads_other_bytes_proves_nothing(tmp_path: Path) -> None:
    """The helpers open the file by path: when it is rewritten under the check (same length, a
    valid INSERT still), a helper proves bytes the main process never indexed. Its proof must not
    count: the statement stays unproven (was: proven, so the main process trusted its own guess
    on the strength of someone else's bytes)."""
    data = big_dump()
    other = data.replace(b"'name ", b"'nome ")
    assert len(other) == len(data) and other != data
    seen, proved = tmp_path / "seen.sql", tmp_path / "proved.sql"
    seen.write_bytes(data)
    proved.write_bytes(other)
    r = DumpReader(str(seen))
    p = r.prover = Prover(str(proved))  # the file as the helpers find it
    try:
        scan_dump(r)
        with pytest.raises(Unproven, match="other bytes"):
            p.wait()
    finally:
        p.close()


def test_a_batch_rewritten_after_the_check_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    """The loader preads each batch again: bytes other than the check's (same length) are refused."""
    path = tmp_path / "d.sql"
    data = big_dump()
    path.write_bytes(data)
    src = DumpSource({"file": str(path), "file_on": "control"}, None)
    try:
        src.load(1 << 18, 8 << 20)
        assert src.index is not None
        (batch,) = src.index.tables["a"].batches
        with open(path, "rb") as f:
            assert batch.read({False: f.fileno()})
            path.write_bytes(data.replace(b"'name 5", b"'nome 5"))
            with pytest.raises(DumpChanged, match=r"bytes [0-9,]+\.\.[0-9,]+ differ from those the check read"):
                batch.read({False: f.fileno()})
    finally:
        src.close()


def test_a_side_file_batch_is_checked_the_same_way(tmp_path: Path) -> None:
    """One-row INSERTs are merged into the restore's own side file: its ranges carry digests too."""
    path = tmp_path / "d.sql"
    path.write_bytes(HEADER + CREATE % b"a" + b"".join(b"INSERT INTO `a` VALUES (%d,'v %d',NULL);\n" % (i, i)
                                                       for i in range(200)) + TRAILER)
    src = DumpSource({"file": str(path), "file_on": "control"}, None)
    try:
        src.load(1 << 20, 8 << 20)
        assert src.index is not None and src.index.side_path
        (batch,) = src.index.tables["a"].batches
        assert batch.side and not batch.segments
        with open(src.index.side_path, "r+b") as f:
            body = batch.read({True: f.fileno()})
            assert body.count(b"),\n(") == 199
            f.seek(batch.offset + 1)
            f.write(b"9")
            f.flush()
            with pytest.raises(DumpChanged) as caught:
                batch.read({True: f.fileno()})
            assert caught.value.side
    finally:
        src.close()


def test_many_verdicts_do_not_fill_the_helpers_pipe(tmp_path: Path) -> None:
    """Each proof's line goes back over a pipe: read only at ``wait``, a dump with thousands of
    guessed statements filled it, the helper stopped reading its jobs and the check hung (here
    every INSERT is guessed: ``min_bytes=1``). The thread's join is a guard against that hang."""
    import threading

    path = tmp_path / "d.sql"
    path.write_bytes(HEADER + CREATE % b"a" + b"".join(b"INSERT INTO `a` VALUES (%d,'v',NULL);\n" % i for i in range(30000))
                     + TRAILER)
    r = DumpReader(str(path))
    p = r.prover = Prover(str(path), min_bytes=1)
    got: list[Any] = []
    th = threading.Thread(target=lambda: got.append((scan_dump(r).tables["a"].rows, p.wait())), daemon=True)
    try:
        th.start()
        th.join(120)
        assert not th.is_alive(), "the check hung on the helpers' pipes"
        assert got == [(30000, set())]
        assert p.sent == 30000
    finally:
        p.close()
