"""How fast does ``innodb_recovery`` read an error log, next to ``grep`` on the same file?

Builds a large error log (default 200 MB) out of the real excerpts in
``tests/data/recovery_logs/`` (many past runs, the last one a crash recovery), then times:

* ``LogTail.since_last_start()`` over a local shell: find the last start in the last 8 MB and
  read it (``wc``/``tail``/``base64``), what the watch does once when it begins;
* parsing that section into events and folding them into the recovery state;
* parsing the *whole* file (lines/s), next to ``grep -c 'InnoDB'`` on it as the peer;
* one poll of the watch when nothing new was written (``read_new``).

    python bench/recovery_log_speed.py            # 200 MB
    python bench/recovery_log_speed.py --mb 20    # quick
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.mysql.error_log import LogTail
from engine.mysql.recovery_log import parse_text
from engine.mysql.recovery_state import RecoveryState
from engine.transport.local import LocalShell

CORPUS = ROOT / "tests" / "data" / "recovery_logs"


def build(path: Path, mb: int) -> int:
    history = "".join((CORPUS / n).read_text() for n in ("mariadb-10.11-crash-multibatch.log", "mariadb-10.6-crash.log"))
    # What fills real error logs between starts: clients that went away.
    history += "".join(f"2026-11-30  4:{m:02d}:17 {m + 3} [Warning] Aborted connection {m + 3} to db: 'shop' user: 'app' "
                       "host: '10.0.1.50' (Got timeout reading communication packets)\n" for m in range(60)) * 5
    last = (CORPUS / "mariadb-10.11-crash-rollback.log").read_text()
    lines = 0
    with path.open("w") as f:
        while f.tell() < mb * 1024 * 1024:
            f.write(history)
            lines += history.count("\n")
        f.write(last)
    return lines + last.count("\n")


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "mysqld.err"
        lines = build(log, args.mb)
        size = log.stat().st_size
        tail = LogTail(LocalShell(), str(log))
        section, t_start = timed(tail.since_last_start)
        state, t_fold = timed(lambda: RecoveryState().feed_all(parse_text(section)))
        assert state.ready and state.checkpoint_lsn == 49030832, state
        _, t_poll = timed(tail.read_new)
        text = log.read_text()
        events, t_all = timed(lambda: sum(1 for _ in parse_text(text)))
        grep, t_grep = timed(lambda: subprocess.run(["grep", "-c", "InnoDB", str(log)], capture_output=True, text=True).stdout.strip())
        print(f"error log: {size / 1048576:.0f} MiB, {lines:,} lines")
        print(f"find and read the last start (LogTail over a local shell): {t_start * 1000:.0f} ms "
              f"({len(section):,} bytes)")
        print(f"parse + fold that section: {t_fold * 1000:.1f} ms; one idle poll (read_new): {t_poll * 1000:.0f} ms")
        print(f"parse the whole file: {t_all:.2f} s = {lines / t_all:,.0f} lines/s ({events:,} events)")
        print(f"peer: grep -c InnoDB on the same file: {t_grep:.2f} s = {lines / t_grep:,.0f} lines/s ({grep} matches)")


if __name__ == "__main__":
    main()
