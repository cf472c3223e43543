"""Checks run in parallel sessions: a small pool of connections with the host's own settings.

Each worker thread owns its sessions (PyMySQL connections are not thread-safe), takes the next
task from a queue ordered big tables first, and records a check that could not run (an SQL
error, its time limit) as not passed, with the error, instead of stopping the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine.actions.verify.model import Check, Sessions, Task
from engine.errors import CommandTimeout, ConnectError, RunbookError, SqlError
from engine.mysql.limits import TIMEOUT_ERRNOS


def _failed(checks: list[Check], why: str) -> None:
    for c in checks:
        c.error = why
        c.count = None
        c.detail = (c.detail + ": " if c.detail else "") + why
        c.verdict(True)


def run_tasks(tasks: list[Task], open_sessions: Callable[[int], Sessions], parallel: int,
              progress: Callable[[int, int], None], timeout: float | None) -> None:
    """Run every task, filling its checks. ``open_sessions(i)`` gives worker ``i`` its sessions."""
    queue = sorted(tasks, key=lambda t: -t.weight)
    lock = threading.Lock()
    done = [0]
    fatal: list[BaseException] = []
    total = sum(len(t.checks) for t in tasks)

    def work(i: int) -> None:
        sessions: Sessions | None = None
        try:
            while True:
                with lock:
                    if not queue or fatal:
                        return
                    task = queue.pop(0)
                start = time.perf_counter()
                try:
                    if sessions is None:
                        sessions = open_sessions(i)
                    task.run(sessions, task.checks)
                except ConnectError as exc:
                    _failed(task.checks, exc.render())
                except SqlError as exc:
                    if exc.errno in TIMEOUT_ERRNOS:
                        _failed(task.checks, f"stopped by its time limit ({timeout:g}s, the step's timeout:)" if timeout
                                else exc.render())
                    else:
                        _failed(task.checks, exc.render() + (f" [SQL: {exc.sql[:300]}]" if exc.sql else ""))
                except CommandTimeout:
                    _failed(task.checks, f"no answer within its time limit ({timeout}s)")
                except (RunbookError, ValueError) as exc:
                    _failed(task.checks, str(exc))
                except BaseException as exc:  # a bug: stop the pool, re-raised in the caller
                    with lock:
                        fatal.append(exc)
                    return
                elapsed = time.perf_counter() - start
                for c in task.checks:
                    c.seconds = elapsed
                with lock:
                    done[0] += len(task.checks)
                    n = done[0]
                progress(n, total)
        finally:
            if sessions is not None:
                sessions.close()

    workers = max(1, min(parallel, len(queue)))
    if workers == 1:
        work(0)
    else:
        threads = [threading.Thread(target=work, args=(i,), name=f"verify-{i}", daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if fatal:
        raise fatal[0]
