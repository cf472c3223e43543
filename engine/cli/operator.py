"""The operator on a terminal: the only code that reads what a person types.

Lines are read with ``select`` in short slices, so that a Ctrl-C (which only sets a flag: see
``engine.run.interrupt``) ends a wait at once instead of leaving ``input()`` blocked.
"""

from __future__ import annotations

import getpass
import select
import sys

from engine.run.operator import Interrupted
from engine.visible import visible


class TerminalOperator:
    """Asks on the controlling terminal; ``interactive`` is False without one."""

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()

    def _line(self, prompt: str, interrupted: Interrupted) -> str | None:
        """One typed line, or None (interrupted, or end of input)."""
        sys.stdout.write(visible(prompt))  # a runbook's text must not drive the terminal
        sys.stdout.flush()
        while True:
            if interrupted():
                sys.stdout.write("\n")
                return None
            try:
                ready, _, _ = select.select([sys.stdin], [], [], 0.1)
            except (OSError, ValueError):
                return None
            if ready:
                line = sys.stdin.readline()
                return line.rstrip("\n") if line else None

    def confirm(self, text: str, expected: str, interrupted: Interrupted) -> bool:
        if not self.interactive:
            return False
        sys.stdout.write(visible(f"\nCONFIRM: {text}\n"))
        answer = self._line(f"Type {expected!r} to go on, anything else stops the run: ", interrupted)
        return answer is not None and answer.strip() == expected

    def decide(self, question: str, interrupted: Interrupted) -> str:
        if not self.interactive:
            return "abort"
        sys.stdout.write(visible(f"\n{question}\n"))
        while True:
            answer = self._line("  rerun it, mark it done, or abort? [rerun/done/abort]: ", interrupted)
            if answer is None:
                return "abort"
            if answer.strip().lower() in ("rerun", "done", "abort"):
                return answer.strip().lower()

    def pause(self, prompt: str, interrupted: Interrupted) -> str | None:
        if not self.interactive:
            return None
        return self._line(f"{prompt} (press Enter) ", interrupted)

    def secret(self, prompt: str) -> str:
        return getpass.getpass(prompt)
