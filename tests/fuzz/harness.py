"""Run one fuzz case through the CLI's own code path, in-process, under a watchdog.

``runbook validate`` is invoked through click's ``CliRunner`` on :data:`engine.cli.main.main`,
so the case meets exactly what an operator's shell meets: the same option parsing, the same
load, the same error-to-exit-code mapping. A case that runs past its time limit is interrupted
by ``SIGALRM`` and counted as a hang; a line of output that is not ``file:line:col: ...``
is counted as an unlocated rejection.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.fuzz.mutate import ROOT, Case

GOOD_RUNBOOK = str(ROOT / "runbooks" / "hello.yml")
GOOD_INVENTORY = str(ROOT / "inventory" / "local.yml")

#: ``file:line:col: `` — or an option that is its own place (``-e #1: ``, ``--limit: ``)
LOCATED = re.compile(r"^(warning: )?(\S.*?:\d+:\d+|-e #\d+|--limit): \S")


class Hang(BaseException):
    """Raised by the watchdog; a BaseException so that no ``except Exception`` swallows it."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


@dataclass
class Outcome:
    seed: int
    kind: str
    ops: list[str]
    exit_code: int | None
    seconds: float
    output: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def internal(self) -> bool:
        return "internal error" in self.output or "Traceback" in self.output or self.exit_code not in (0, 2, None)

    @property
    def hang(self) -> bool:
        return self.exit_code is None


def invoke(args: list[str], workdir: Path, *, limit_s: float = 5.0) -> tuple[int | None, str, float]:
    """``runbook ARGS`` in-process under a watchdog: (exit code or None on a hang, output, seconds)."""
    from engine.cli.main import main
    from engine.secrets import MASKER

    runner = CliRunner()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    start = time.perf_counter()
    try:
        res = runner.invoke(main, args, env={"NO_COLOR": "1", "RUNBOOK_HOME": str(workdir / "home")}, catch_exceptions=True)
        code: int | None = res.exit_code
        out = res.output
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            out += f"\nTraceback: {type(res.exception).__name__}: {res.exception}"
            code = 1
    except Hang:
        code, out = None, "hang"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        MASKER.clear()  # -e secrets of one case are not the next case's business
    return code, out, time.perf_counter() - start


def unlocated(output: str) -> list[str]:
    """Lines of a rejection that do not start with their place (``file:line:col: ``)."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    if not lines:
        return ["(no message)"]
    return [ln for ln in lines if not LOCATED.match(ln)]


def run_case(case: Case, kind: str, workdir: Path, *, limit_s: float = 5.0, extra: tuple[str, ...] = ()) -> Outcome:
    """Validate ``case`` as a runbook (with the shipped inventory) or as an inventory (with
    the shipped runbook). Returns what the operator would have seen."""
    # an inventory without a suffix is read as YAML, else as INI: both parsers get cases
    path = workdir / ("case.yml" if kind == "runbook" else ("inv.yml" if case.seed % 2 else "inv"))
    path.write_bytes(case.data)
    args = ["validate", str(path), "-i", GOOD_INVENTORY] if kind == "runbook" else ["validate", GOOD_RUNBOOK, "-i", str(path)]
    code, out, seconds = invoke(args + list(extra), workdir, limit_s=limit_s)
    outcome = Outcome(case.seed, kind, case.ops, code, seconds, out)
    if code == 2:
        outcome.problems = unlocated(out)
    return outcome


def extra_args(seed: int) -> tuple[str, ...]:
    """Now and then, hostile ``-e`` and ``--limit`` values too."""
    import random

    rng = random.Random(seed * 7919)
    if rng.random() > 0.08:
        return ()
    return rng.choice([
        ("-e", '{"a": ' * 3000 + "1" + "}" * 3000), ("-e", "{a: !!int abc}"), ("-e", "{a: !!bool maybe}"),
        ("-e", "{a: !!timestamp x}"), ("-e", "@/dev/zero"), ("-e", "@" + "x" * 300), ("-e", "@/"), ("-e", "{a: *b}"),
        ("-e", "{" + "a" * 5 + ": \x07}"), ("--limit", "~["), ("--limit", "~("), ("--limit", "all:!"), ("--limit", "\x1b[2J"),
        ("-e", "x=\x1b[2J"), ("-e", "{1: 2}"), ("-e", "{a: 9" + "9" * 4400 + "}"), ("-e", "@" + os.devnull),
    ])
