"""Ctrl-C, SIGTERM and SIGHUP: the signal handler only counts.

A handler that wrote the journal or the console could deadlock: it runs on the main thread
between two bytecodes, possibly while that thread holds the very lock it would need. So it
touches nothing but an integer; the play's main loop (which never runs a step itself) notices
the count within a tenth of a second, journals and prints. First signal: finish the steps
running now, start nothing new, stop. Second: abort them (they stay in doubt).

```python
interrupts = Interrupts()
restore = interrupts.install()
...                       # the main loop reads interrupts.presses
restore()
```
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_NAMES: dict[int, str] = {int(signal.SIGINT): "Ctrl-C", int(signal.SIGTERM): "SIGTERM", int(signal.SIGHUP): "SIGHUP"}


class Interrupts:
    """How many times the operator (or the system) asked the run to stop, and by which signal."""

    def __init__(self) -> None:
        self.presses = 0
        self.signal_name = ""

    def _handler(self, signum: int, frame: Any) -> None:
        self.presses += 1
        self.signal_name = _NAMES.get(signum, str(signum))

    def install(self) -> Callable[[], None]:
        """Handle the stop signals until the returned function is called."""
        previous = {sig: signal.signal(sig, self._handler) for sig in SIGNALS}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    @property
    def stopping(self) -> bool:
        return self.presses >= 1

    @property
    def aborting(self) -> bool:
        return self.presses >= 2
