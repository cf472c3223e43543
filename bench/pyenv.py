"""The environment a benchmarked ``runbook`` process runs in, as an installed engine has it.

pip compiles a package's modules when it installs it; this lab sets PYTHONDONTWRITEBYTECODE,
which would make every ``runbook`` process compile the engine's ~240 modules again (≈0.3 s of
CPU that no installed engine pays). The benches compile each tree once, into a cache of their
own (PYTHONPYCACHEPREFIX: nothing is written into the checkout), and run with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE = Path("/tmp/runbook-bench/pycache")
_compiled: set[Path] = set()


def engine_env(tree: Path, base: dict[str, str] | None = None, **more: str) -> dict[str, str]:
    """``base`` (default: this process's environment) for ``tree``'s engine, bytecode cached."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(more, PYTHONPATH=str(tree), PYTHONPYCACHEPREFIX=str(CACHE / str(tree).strip("/").replace("/", "+")))
    if tree not in _compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "engine"], env=env, cwd=tree, check=True, capture_output=True)
        _compiled.add(tree)
    return env


def timed_engine(tree: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s: user + system from wait4) of one whole ``python -m engine.cli ARGS``
    process of ``tree`` with ``env``; a failure stops the bench with the process's last output."""
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=tree, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"runbook {' '.join(args)} failed in {tree}:\n{out.decode(errors='replace')[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime
