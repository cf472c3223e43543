"""The play's worker threads: reused from step to step, and coarser GIL switching for a fleet."""

from __future__ import annotations

import queue
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from engine.run import play
from engine.run.play import _Task, _Workers


@pytest.fixture
def switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


class _Host:
    class host:  # stands for HostState.host (only .name is read)
        name = "h"


def _run(pool: _Workers, n: int) -> None:
    done: queue.SimpleQueue[_Task] = queue.SimpleQueue()
    gate = queue.SimpleQueue[None]()

    def fn(step: Any, hs: Any, stage: str) -> Any:
        gate.get()  # every task holds its worker until all n were submitted: n workers
        return "ok"

    for _ in range(n):
        pool.submit(_Task(fn, None, _Host(), "s", done))  # type: ignore[arg-type]
    for _ in range(n):
        gate.put(None)
    for _ in range(n):
        assert done.get(timeout=10).result == "ok"


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
