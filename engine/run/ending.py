"""How a run (play, resume, rollback) ended, as the run layer says it. Only ``engine.cli.main``
turns it into an exit code (0 · 1 · 2 · 130: interrupted or aborted by the operator)."""

from __future__ import annotations

import enum


class RunEnd(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a step (or an undo) failed, or the operator did not confirm
    INVALID = "invalid"  # the input was refused before anything ran
    INTERRUPTED = "interrupted"  # the operator (or SIGTERM/SIGHUP) stopped it
    ABORTED = "aborted"  # the operator declined a confirmation: stopped before the stage, by choice
    NEEDS_DECISION = "needs decision"  # resume stopped at an in-doubt step nothing can probe
