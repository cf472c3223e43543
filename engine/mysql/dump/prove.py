"""Proving the big INSERTs of a dump in helper processes, so the whole-file check uses both cores.

The tokenizer's costly part is the fast-path regex over each extended INSERT (≈ 1 MB, one row
per line): ≈ 1.8 CPU-s for a 180 MB dump, and Python's ``re`` holds the GIL. The reader can
instead *guess* such a statement's end (its head matched, then the first ``;\\n``: an INSERT
written by mysqldump ends there) and hand ``(offset, length)`` to a :class:`Prover`, whose
helper processes read the same bytes of the (plain, local) file and run the very match the
reader would have run: ``_FAST_DATA;`` (else ``_FAST_DATA_HEX;``: rows exact, not LOAD DATA
safe, which :meth:`Prover.wait` reports by offset) from the statement's start, ending exactly
at the guessed end. Equal match, equal statement: the guess changes nothing.

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
        self.load = [0] * len(self.procs)  # bytes handed to each helper
        self.sent = 0
        self.result: list[str] | None = None
        self.lock = threading.Lock()

    def submit(self, offset: int, length: int, values_at: int) -> None:
        """Prove the statement at ``offset`` (stream = file offset), ``length`` bytes with its ``;``,
        its row list at ``values_at``."""
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
        proven = 0
        for p in self.procs:
            assert p.stdin is not None and p.stdout is not None
            try:
                p.stdin.close()
            except OSError:
                pass
            out = p.stdout.read().decode("ascii", "replace").split()
            p.wait()
            if p.returncode != 0 or not out or out[-2:-1] != ["ok"]:
                bad.append(f"helper exited {p.returncode}")
                continue
            proven += int(out[-1])
            verdicts = out[:-2]
            for off, what in zip(verdicts[0::2], verdicts[1::2]):
                if what == "x":
                    self.inexact.add(int(off))
                else:
                    bad.append(f"at byte {off}")
        if not bad and proven != self.sent:
            bad.append(f"{proven} of {self.sent} proven")
        return bad

    def close(self) -> None:
        """Stop the helpers (after an error: their verdicts are no longer wanted)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
