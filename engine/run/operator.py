"""What the run asks the person at the controls, as an interface: the run layer never touches
the terminal. ``engine.cli.operator`` implements it on a terminal; tests and unattended runs use
:class:`Unattended`.

Every question is asked on the main thread. A worker thread (a ``pause`` prompt) goes through
:class:`OperatorDesk`, whose requests the main loop answers between its waits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

Interrupted = Callable[[], bool]  # true once the operator pressed Ctrl-C: stop waiting for input


class Operator(Protocol):
    """The person at the controls."""

    @property
    def interactive(self) -> bool:
        """A terminal is there to answer questions."""
        ...

    def confirm(self, text: str, expected: str, interrupted: Interrupted) -> bool:
        """Show ``text``; True when the operator types ``expected``."""
        ...

    def decide(self, question: str, interrupted: Interrupted) -> str:
        """An in-doubt step: ``rerun``, ``done`` or ``abort``."""
        ...

    def pause(self, prompt: str, interrupted: Interrupted) -> str | None:
        """Wait for Enter; the typed line, or None when interrupted first."""
        ...

    def secret(self, prompt: str) -> str:
        """A secret typed without echo."""
        ...


class Unattended:
    """No terminal: every question gets the answer that changes nothing."""

    interactive = False

    def confirm(self, text: str, expected: str, interrupted: Interrupted) -> bool:
        return False

    def decide(self, question: str, interrupted: Interrupted) -> str:
        return "abort"

    def pause(self, prompt: str, interrupted: Interrupted) -> str | None:
        return None

    def secret(self, prompt: str) -> str:
        return ""


class OperatorDesk:
    """Questions from worker threads, answered on the main thread by :meth:`serve`."""

    def __init__(self, operator: Operator, interrupted: Interrupted):
        self.operator = operator
        self.interrupted = interrupted
        self._queue: queue.Queue[tuple[str, Future[str | None]]] = queue.Queue()
        self._main = threading.main_thread()

    def pause(self, prompt: str) -> str | None:
        """From any thread: the operator's line, or None when interrupted or without a terminal."""
        if threading.current_thread() is self._main:
            return self.operator.pause(prompt, self.interrupted)
        fut: Future[str | None] = Future()
        self._queue.put((prompt, fut))
        while True:
            try:
                return fut.result(timeout=0.1)
            except TimeoutError:
                if self.interrupted() and not fut.running():
                    fut.cancel()
                    return None

    def serve(self) -> None:
        """On the main thread: answer what the workers asked."""
        while True:
            try:
                prompt, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(None if self.interrupted() else self.operator.pause(prompt, self.interrupted))
            except BaseException as exc:  # the worker must not wait forever
                fut.set_exception(exc)
