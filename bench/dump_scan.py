"""How fast does the dump reader go? MB/s of ``statements()`` and ``scan_dump`` on employees x30.

Prints, for the plain ``.sql`` (~172 MB, 3.9 M rows) and its ``.gz``, interleaved over
``--rounds`` rounds, the MB/s (decompressed bytes / wall seconds) of:

* ``find``: the reference a loader could use for tool-written data only: read 8 MiB chunks and
  cut at each ``b";\\n"`` (``bytes.find``), no tokenizing, no classification;
* ``statements``: :class:`DumpReader` ``.statements()`` (tokenize, classify, fast row count);
* ``scan_dump``: the whole-file check (sha256 of the file, rows per table, CREATE TABLE parsing).

A third file, employees x3 dumped with ``--skip-extended-insert`` (one statement per row),
shows the per-statement cost.

The dump is built once by ``bench/employees30.py`` and cached under /tmp/runbook-bench/.

    python bench/dump_scan.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.employees30 import DEFAULT_PATH, ensure_dump
from engine.mysql.dump import DumpReader, scan_dump

CHUNK = 8 * 1024 * 1024


def find_split(path: Path) -> tuple[int, int]:
    """(statements, bytes): the bytes.find(b";\\n") reference."""
    opener = gzip.open if path.suffix == ".gz" else open
    n = total = 0
    rest = b""
    with opener(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            buf = rest + chunk
            pos = 0
            while True:
                i = buf.find(b";\n", pos)
                if i < 0:
                    break
                n += 1
                pos = i + 2
            rest = buf[pos:]
    return n, total


def reader_split(path: Path) -> tuple[int, int]:
    r = DumpReader(path)
    n = sum(1 for _ in r.statements())
    assert r.source is not None
    return n, r.source.total_bytes


def scan(path: Path) -> tuple[int, int]:
    s = scan_dump(path)
    return s.rows, s.total_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    plain = ensure_dump(DEFAULT_PATH)
    gz = ensure_dump(DEFAULT_PATH.with_name(DEFAULT_PATH.name + ".gz"))
    # one INSERT per row: the per-statement cost (employees x3: 392 k statements)
    skip = ensure_dump(DEFAULT_PATH.with_name("employees3-skip-extended.sql"), scale=3, options=["--skip-extended-insert"])
    methods: list[tuple[str, Callable[[Path], tuple[int, int]]]] = [
        ("find ;\\n (reference)", find_split), ("statements()", reader_split), ("scan_dump", scan)]
    results: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], int] = {}
    cpu_rates: dict[tuple[str, str], list[float]] = {}  # per CPU-second: less sensitive to a busy machine
    for rnd in range(args.rounds):
        for file in (plain, gz, skip):
            for label, fn in methods:
                t0, c0 = time.perf_counter(), time.process_time()
                count, nbytes = fn(file)
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                results.setdefault((file.name, label), []).append(nbytes / dt / 1e6)
                cpu_rates.setdefault((file.name, label), []).append(nbytes / cpu / 1e6)
                counts[(file.name, label)] = count
                print(f"  round {rnd + 1}: {file.name:20} {label:22} {dt:6.2f} s  {nbytes / dt / 1e6:7.1f} MB/s", file=sys.stderr)
    size = plain.stat().st_size
    print(f"\nemployees x30: {size:,} bytes of SQL ({size / 1e6:.0f} MB), .gz {gz.stat().st_size:,} bytes; "
          f"median of {args.rounds} interleaved rounds\n")
    print("| file | method | MB/s wall (median) | min..max | MB per CPU-s (median) | statements / rows |\n"
          "|---|---|---:|---:|---:|---:|")
    for (fname, label), vals in results.items():
        what = "rows" if label == "scan_dump" else "statements"
        print(f"| {fname} | {label} | {statistics.median(vals):.0f} | {min(vals):.0f}..{max(vals):.0f} "
              f"| {statistics.median(cpu_rates[(fname, label)]):.0f} | {counts[(fname, label)]:,} {what} |")


if __name__ == "__main__":
    main()
