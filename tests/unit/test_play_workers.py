"""The play's worker threads: reused from step to step, and coarser GIL switching for a fleet."""

from __future__ import annotations

import queue
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from engine.run import play
from engine.run.play import _Finished, _Task, _Workers


@pytest.fixture
def switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


class _Host:
    class host:  # stands for HostState.host (only .name is read)
        name = "h"


def _run(pool: _Workers, n: int) -> None:
    done = _Finished()
    gate = queue.SimpleQueue[None]()

    def fn(step: Any, hs: Any, stage: str) -> Any:
        gate.get()  # every task holds its worker until all n were submitted: n workers
        return "ok"

    for _ in range(n):
        pool.submit(_Task(fn, None, _Host(), "s", done))  # type: ignore[arg-type]
    for _ in range(n):
        gate.put(None)
    ended: list[_Task] = []
    while len(ended) < n:
        ended += done.take(n - len(ended), timeout=10)
    assert [t.result for t in ended] == ["ok"] * n


def test_a_few_hosts_leave_the_switch_interval_alone(switch_interval: None) -> None:
    sys.setswitchinterval(0.005)
    _run(_Workers(), play.MANY_WORKERS - 1)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_a_fleet_switches_threads_less_often(switch_interval: None) -> None:
    sys.setswitchinterval(0.005)
    pool = _Workers()
    _run(pool, play.MANY_WORKERS)
    assert sys.getswitchinterval() == pytest.approx(play.FLEET_SWITCH_INTERVAL)
    _run(pool, play.MANY_WORKERS)  # the workers are reused: no new thread
    assert pool._started == play.MANY_WORKERS


def test_the_main_thread_gets_every_finished_task_once_and_wakes_when_enough_are_there() -> None:
    pool = _Workers()
    done = _Finished()
    gate = queue.SimpleQueue[None]()
    n = 5

    def fn(step: Any, hs: Any, stage: str) -> Any:
        gate.get()
        return "ok"

    tasks = [_Task(fn, None, _Host(), "s", done) for _ in range(n)]  # type: ignore[arg-type]
    for t in tasks:
        pool.submit(t)
    gate.put(None)
    first = done.take(1, timeout=10)  # a host to refill the forks with: the first result wakes it
    assert len(first) >= 1
    for _ in range(n - 1):
        gate.put(None)
    rest: list[_Task] = []
    while len(first) + len(rest) < n:
        rest += done.take(n - len(first) - len(rest), timeout=10)  # the step's last result wakes it
    assert sorted(map(id, first + rest)) == sorted(map(id, tasks))
    assert done.take(1, timeout=0) == []  # nothing is given twice


def test_a_wait_for_results_ends_at_its_timeout_with_what_is_there() -> None:
    done = _Finished()
    assert done.take(3, timeout=0.01) == []  # the main loop goes on to watch for interrupts
