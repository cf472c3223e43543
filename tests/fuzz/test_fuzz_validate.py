"""Fuzzing ``runbook validate``: seeded mutations of the shipped runbooks, the README's examples,
``tests/cli/bad/`` and the inventories, run in-process through the CLI's own code path.

Every case must end in exit 0 or 2 — never an internal error or a traceback — every rejection
line must start with its place (``file:line:col: ``), and no case may run past its time limit
(a ``SIGALRM`` watchdog turns a hang into a failure; ``faulthandler`` ends the process if
even that cannot interrupt it, so CI never blocks). A failure names its seed:
``make_case(corpus(kind), seed)`` rebuilds the input. ``RUNBOOK_FUZZ_N`` sets the number of
runbook cases (default 2,000; inventories get a third of it); ``bench/fuzz.py`` runs more.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from pathlib import Path

import pytest

from tests.fuzz.harness import extra_args, run_case
from tests.fuzz.mutate import corpus, make_case

N = int(os.environ.get("RUNBOOK_FUZZ_N", "2000"))
CASE_LIMIT_S = 5.0
#: base of the seeds: CI runs the same cases every time (a failure is reproducible)
BASE = 1_000_000


def _fuzz(kind: str, n: int, tmp_path: Path) -> list[str]:
    seeds = corpus(kind)
    assert seeds, f"no {kind} to mutate"
    failures: list[str] = []
    try:
        for seed in range(BASE, BASE + n):
            case = make_case(seeds, seed)
            extra = extra_args(seed) if kind == "runbook" else ()
            # the backstop, re-armed for every case: a hang that SIGALRM cannot interrupt (a C
            # loop) ends the process with every thread's traceback instead of blocking CI
            faulthandler.dump_traceback_later(CASE_LIMIT_S * 4, exit=True, file=sys.stderr)
            o = run_case(case, kind, tmp_path, limit_s=CASE_LIMIT_S, extra=extra)
            what = None
            if o.hang:
                what = f"hang over {CASE_LIMIT_S}s"
            elif o.internal:
                what = f"exit {o.exit_code}: {o.output.strip()[-300:]}"
            elif o.problems:
                what = f"rejection without a position: {o.problems[0][:200]!r}"
            if what:
                failures.append(f"seed {seed} {o.ops} {extra[:1]}: {what}")
    finally:
        faulthandler.cancel_dump_traceback_later()
    return failures


# Jinja2's lexer decodes a string literal such as '\.' with Python's unicode-escape codec,
# which warns: user input, not a defect (the CLI shows no DeprecationWarning).
@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
@pytest.mark.parametrize("kind,n", [("runbook", N), ("inventory", max(1, N // 3))])
def test_fuzz_validate(kind: str, n: int, tmp_path: Path) -> None:
    failures = _fuzz(kind, n, tmp_path)
    assert not failures, f"{len(failures)} of {n} {kind} cases failed:\n" + "\n".join(failures[:20])


def test_generator_is_deterministic() -> None:
    seeds = corpus("runbook")
    assert make_case(seeds, 42).data == make_case(seeds, 42).data
    assert len({make_case(seeds, s).data for s in range(50)}) > 40


def test_corpus_holds_every_source() -> None:
    """Shipped runbooks, the broken runbooks of the CLI tests and the README's examples."""
    texts = corpus("runbook")
    root = Path(__file__).resolve().parents[2]
    assert any("Hello, runbook" in t for t in texts)
    assert sum(1 for _ in (root / "tests/cli/bad").glob("*.yml")) <= len(texts)
    assert corpus("inventory")
