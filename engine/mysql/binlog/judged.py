"""What a replay's first pass judged, so its second pass applies nothing else.

The two passes read the window twice, and a binlog can change in between: a file of the same
name with other content (``RESET MASTER`` numbers from .000001 again, an archive copied over),
a file purged or cut short. The first pass records each transaction of the listed tables it
judged — its file, position and a digest of its events (``Transaction.digest``); the second
checks each one it reads against that list, in order, before the applier may take it, and that
none is missing at the end. Eight bytes a transaction: a window of millions stays small.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from engine.errors import ActionError
from engine.mysql.binlog.reader import Transaction
from engine.mysql.binlog.sources import file_key


def _pack(txn: Transaction) -> int:
    """Its position (low 32 bits: the order of the list binds the rest) and its digest."""
    return (txn.pos & 0xFFFFFFFF) << 32 | txn.digest


class BinlogChanged(ActionError):
    """The second pass read a transaction the first did not judge (or missed one it did)."""


class Judged:
    """The first pass's transactions of the listed tables, in the order read."""

    def __init__(self) -> None:
        self._packed = array("Q")  # pos << 32 | digest (binlog positions are 32-bit)
        self._files: list[tuple[int, str]] = []  # (index of its first transaction, file)

    def add(self, txn: Transaction) -> None:
        if not txn.touched:
            return
        if not self._files or self._files[-1][1] != txn.file:
            self._files.append((len(self._packed), txn.file))
        self._packed.append(_pack(txn))

    def __len__(self) -> int:
        return len(self._packed)

    def _at(self, i: int) -> tuple[str, int, int]:
        name = next(f for k, f in reversed(self._files) if k <= i)
        v = self._packed[i]
        return name, v >> 32, v & 0xFFFFFFFF  # (a position past 4 GiB shows its low bits)

    def _first_from(self, at: tuple[str, int]) -> int:
        """The index of the first transaction judged at or after ``at`` (a resume's start): whole
        files before it are stepped over, positions compared only in its own file."""
        at_file = file_key(at[0])
        for f, (k, name) in enumerate(self._files):
            end = self._files[f + 1][0] if f + 1 < len(self._files) else len(self._packed)
            key = file_key(name)
            if key > at_file:
                return k
            if key == at_file:
                return next((i for i in range(k, end) if self._packed[i] >> 32 >= at[1]), end)
        return len(self._packed)

    def verify(self, txns: Iterable[Transaction], at: tuple[str, int]) -> Iterator[Transaction]:
        """``txns`` (the second pass, from ``at``) as they come, each of the listed tables checked
        against the first pass before it is passed on; :class:`BinlogChanged` otherwise."""
        i, n = self._first_from(at), len(self._packed)
        fi = 0  # the entry of _files holding index i
        for txn in txns:
            if txn.touched:
                while fi + 1 < len(self._files) and self._files[fi + 1][0] <= i:
                    fi += 1
                ok = i < n and self._files[fi][1] == txn.file and self._packed[i] == _pack(txn)
                if not ok:
                    raise BinlogChanged(self._changed(txn, i))
                i += 1
            yield txn
        if i < n:
            name, pos, _ = self._at(i)
            raise BinlogChanged(f"the binlog changed since the check: the transaction at {name}:{pos} the check read is not "
                                f"there any more (purged or cut short?); nothing after {name}:{pos} was applied",
                                hint="read the binlogs from where they are kept unchanged, and run the step again")

    def _changed(self, txn: Transaction, i: int) -> str:
        if i < len(self._packed):
            name, pos, _ = self._at(i)
            expected = f"the check read the transaction at {name}:{pos} there" if (name, pos) != (txn.file, txn.pos) else \
                "its events differ from the ones the check read"
        else:
            expected = "the check read no transaction of these tables there"
        return (f"the binlog changed since the check: the transaction at {txn.file}:{txn.pos}"
                + (f" (GTID {txn.gtid})" if txn.gtid else "") + f": {expected}; it was not applied")
