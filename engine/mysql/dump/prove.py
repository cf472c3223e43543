"""Proving the big INSERTs of a dump in helper processes, so the whole-file check uses both cores.

The tokenizer's costly part is the fast-path regex over each extended INSERT (≈ 1 MB, one row
per line): ≈ 1.8 CPU-s for a 180 MB dump, and Python's ``re`` holds the GIL. The reader can
instead *guess* such a statement's end (its head matched, then the first ``;\\n``: an INSERT
written by mysqldump ends there) and hand ``(offset, length)`` to a :class:`Prover`, whose
helper processes read the same bytes of the (plain, local) file and run the very match the
reader would have run: ``_FAST_DATA;`` (else ``_FAST_DATA_HEX;``: rows exact, not LOAD DATA
safe, which :meth:`Prover.wait` reports by offset) from the statement's start, ending exactly
at the guessed end. Equal match, equal statement: the guess changes nothing — provided the
helper matched the very bytes the reader read. It opens the file by path, so a file rewritten
under the check (a backup job writing the next dump to the same path) would let it prove other
bytes: each proof carries the sha256 of what was proven (:func:`fastpath.digest`), and a proof of
other bytes than the reader's own is no proof. The row list's digest is kept (``bodies``) for the
batch that carries it, so the loader checks the same bytes again before sending them.

A guess the helpers do not prove (a ``;\\n`` inside a string, a hand-written file) makes
:meth:`Prover.wait` raise :class:`Unproven`, and the caller reads the file again without
guessing. Nothing is decided from a guess before :meth:`Prover.wait` returned: the restore's
check (:mod:`engine.actions.restore.source`) waits after its pass, and after an error too (a
guess that went wrong can make a later statement look broken: then the plain pass judges).

The helpers run :mod:`engine.mysql.dump.fastpath` as a script: the same patterns the reader
uses (it imports them from there), and the standard library only, so a helper starts in
milliseconds.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading

from engine.errors import RunbookError
from engine.mysql.dump.fastpath import prove

__all__ = ["Prover", "Unproven", "prove"]

#: a statement at least this long is worth a helper (shorter ones are matched in place)
PROVE_MIN = 64 * 1024
HELPERS = 2


class Unproven(RunbookError):
    """A guessed statement end was not proven: read the file again without guessing."""


class Prover:
    """Helper processes proving guessed statements of ``path``; ``submit`` each, then ``wait``."""

    def __init__(self, path: str, helpers: int = HELPERS, min_bytes: int = PROVE_MIN) -> None:
        self.min_bytes = min_bytes
        from engine.mysql.dump import fastpath

        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(max(1, helpers)):
                self.procs.append(subprocess.Popen(
                    # isolated, no site: the script needs the standard library only
                    [sys.executable, "-I", "-S", fastpath.__file__, path], stdin=subprocess.PIPE, bufsize=0,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    # not in the terminal's process group: a Ctrl-C is the run's to handle (it stops
                    # them with close()); a dead parent closes their stdin, and they end
                    start_new_session=True))
        except OSError:
            self.close()
            raise
        # each helper's verdicts are read as they come: read only at wait(), thousands of lines
        # filled the pipe, the helper stopped reading its jobs and submit() blocked for ever
        self.outputs: list[list[bytes]] = [[] for _ in self.procs]
        self.readers = [threading.Thread(target=_drain, args=(p, out), daemon=True) for p, out in zip(self.procs, self.outputs)]
        for th in self.readers:
            th.start()
        self.load = [0] * len(self.procs)  # bytes handed to each helper
        self.sent = 0
        self.result: list[str] | None = None
        self.lock = threading.Lock()
        #: per offset, the digest (:func:`fastpath.digest`) of the bytes the reader read there
        self.expected: dict[int, bytes] = {}
        #: per offset, the row list's length and sha256 (the restore's index reuses it)
        self.bodies: dict[int, tuple[int, bytes]] = {}

    def submit(self, offset: int, length: int, values_at: int, text: bytes | memoryview) -> None:
        """Prove the statement at ``offset`` (stream = file offset), ``length`` bytes with its ``;``,
        its row list at ``values_at``; ``text``: the statement as the reader read it, without its
        ``;`` (a proof counts only for these very bytes)."""
        view = memoryview(text)
        body = hashlib.sha256(view[values_at:])
        self.bodies[offset] = (len(view) - values_at, body.digest())
        # as fastpath.digest, whose row-list half is the sha256 just kept
        self.expected[offset] = (hashlib.sha256(view[:values_at]).hexdigest() + body.hexdigest()).encode()
        i = self.load.index(min(self.load))
        self.load[i] += length
        stdin = self.procs[i].stdin
        assert stdin is not None
        try:
            stdin.write(b"%d %d %d\n" % (offset, length, values_at))
        except OSError:  # the helper died: its verdict (none) fails the proof
            pass
        self.sent += 1

    def wait(self) -> set[int]:
        """Once every guess is proven: the offsets of the statements that hold literals LOAD DATA
        cannot carry (hex, bit, words). :class:`Unproven` otherwise (a helper failed, died, or
        found a statement that is not what the guess said)."""
        with self.lock:
            if self.result is None:
                self.inexact: set[int] = set()
                self.result = self._collect()
        if self.result:
            raise Unproven("a guessed statement boundary was not proven: " + "; ".join(self.result[:3]))
        return self.inexact

    def _collect(self) -> list[str]:
        bad: list[str] = []
        proven = 0  # lines the helpers read
        matched = 0  # proofs of the reader's own bytes
        for p, reader, out in zip(self.procs, self.readers, self.outputs):
            assert p.stdin is not None
            try:
                p.stdin.close()
            except OSError:
                pass
            reader.join()
            lines = [ln.split() for ln in b"".join(out).splitlines()]
            p.wait()
            if p.returncode != 0 or not lines or len(lines[-1]) != 2 or lines[-1][0] != b"ok":
                bad.append(f"helper exited {p.returncode}")
                continue
            proven += int(lines[-1][1])
            for verdict in lines[:-1]:
                off = int(verdict[0])
                if len(verdict) != 3 or verdict[1] not in (b"safe", b"x"):
                    bad.append(f"at byte {off}")
                elif verdict[2] != self.expected.get(off):
                    bad.append(f"at byte {off} the helper read other bytes than the check (the file changed while"
                               " it was read)")
                else:
                    matched += 1
                    if verdict[1] == b"x":
                        self.inexact.add(off)
        if not bad and not proven == matched == self.sent:
            bad.append(f"{matched} of {self.sent} proven")
        return bad

    def close(self) -> None:
        """Stop the helpers (after an error: their verdicts are no longer wanted)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for th in getattr(self, "readers", ()):
            th.join()  # the helper is gone: its stdout is at its end
        for p in self.procs:
            for f in (p.stdin, p.stdout):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass


def _drain(p: subprocess.Popen[bytes], out: list[bytes]) -> None:
    """All of a helper's stdout, into ``out``."""
    assert p.stdout is not None
    try:
        while chunk := p.stdout.read(65536):
            out.append(chunk)
    except (OSError, ValueError):  # closed under it by close()
        pass
