"""The loader's pick within a table (engine/actions/restore/loader.py ``Loader._take``): every batch is
taken once whatever the interleaving; a worker goes on with its own next batch; a worker that
joins a busy table starts in the middle of the longest untaken run (far-apart key ranges)."""

from __future__ import annotations

import random
import threading

from engine.actions.restore.index import Batch
from engine.actions.restore.loader import Loader, Shared, TableStats


def loader(n: int) -> Loader:
    ld = Loader.__new__(Loader)
    batches = [Batch("t", i, i, 0, False, i * 10, 10, True) for i in range(n)]
    ld.position = {b.key: i for i, b in enumerate(batches)}
    ld.shared = Shared(pending={"t": list(batches)}, running={"t": 0}, left={"t": 10 * n}, stats={"t": TableStats()},
                       cond=threading.Condition())
    return ld


def test_two_workers_write_far_apart_ranges() -> None:
    ld = loader(20)
    a: dict[str, int] = {}
    b: dict[str, int] = {}
    first = ld._take("t", a.get("t"))
    a["t"] = ld.position[first.key]
    ld.shared.running["t"] = 1
    joined = ld._take("t", b.get("t"))  # the second worker joins the busy table: the middle of 1..19
    b["t"] = ld.position[joined.key]
    assert (first.first, joined.first) == (0, 10)
    assert ld._take("t", a["t"]).first == 1 and ld._take("t", b["t"]).first == 11  # each goes on with its own range


def test_every_batch_is_taken_once_whatever_the_interleaving() -> None:
    rnd = random.Random(7)
    for n in (1, 2, 3, 17, 64):
        for _ in range(50):
            ld = loader(n)
            lasts: list[dict[str, int]] = [{} for _ in range(rnd.randint(1, 4))]
            busy = [False] * len(lasts)
            taken = []
            while ld.shared.pending["t"]:
                w = rnd.randrange(len(lasts))
                if busy[w]:  # the worker's batch commits
                    busy[w] = False
                    ld.shared.running["t"] -= 1
                    continue
                b = ld._take("t", lasts[w].get("t"))
                lasts[w]["t"] = ld.position[b.key]
                ld.shared.running["t"] += 1
                busy[w] = True
                taken.append(b.first)
            assert sorted(taken) == list(range(n))
