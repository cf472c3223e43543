"""Random damage to a dump, for the reader's fuzz tests."""

from __future__ import annotations

import random


def mangle(base: bytes, pieces: list[bytes], rnd: random.Random, *, edits: tuple[int, int] = (1, 4), insert: float = 0.5,
           delete: float = 0.75) -> bytes:
    """``base`` with ``edits`` random edits: a piece inserted (probability ``insert``), up to 20
    bytes deleted (up to ``delete``), else one byte replaced."""
    d = bytearray(base)
    for _ in range(rnd.randint(*edits)):
        pos = rnd.randrange(len(d))
        op = rnd.random()
        if op < insert:
            d[pos:pos] = rnd.choice(pieces)
        elif op < delete:
            del d[pos:pos + rnd.randint(1, 20)]
        else:
            d[pos] = rnd.randrange(256)
    return bytes(d)
