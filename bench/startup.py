"""Start-up: ``runbook validate runbooks/emergency.yml`` and a one-step play, whole processes.

    python bench/startup.py [--rounds 7] [--baseline-tree DIR]

Each command is a fresh ``python -m engine.cli`` process (the interpreter running this bench,
not a pyenv shim); wall and CPU (user + system, from wait4) are taken over interleaved rounds
and the medians printed with the load average. ``-X importtime`` of the same commands gives
the import share and the heaviest top-level imports. Goal (issue 19): both ≤ 0.3 s.

* validate: ``runbooks/emergency.yml -i inventory/local.yml`` (every SOP action, no host), twice:
  with no cache of template analyses (``RUNBOOK_CACHE_DIR=''``: a runbook never validated
  before) and with one a first run filled (the runbook validated again; a tree without the
  cache ignores the variable and does the same work both times);
* play, local: one ``shell: 'true'`` step on ``connection: local``;
* play, ssh: the same step on a test sshd (connection and the command over SSH included).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pyenv import engine_env, timed_engine
from tests.sshd import start_sshd

ONE_STEP = "name: one step\nstages:\n  - name: s\n    steps:\n      - name: t\n        shell: 'true'\n"


def timed(tree: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    return timed_engine(tree, args, engine_env(tree, env))


def import_share(tree: Path, args: list[str], env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """(seconds importing, the heaviest top-level imports) from -X importtime."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "engine.cli", *args], cwd=tree,
                         env=engine_env(tree, env), capture_output=True, text=True)
    top: list[tuple[float, str]] = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if m:
            top.append((int(m.group(1)) / 1e6, m.group(2).strip()))
    return sum(t for t, _ in top), sorted(top, reverse=True)[:6]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline-tree", help="another checkout run in the same rounds (before/after)")
    opts = ap.parse_args()
    trees = [("this tree", ROOT)] + ([("baseline", Path(opts.baseline_tree).resolve())] if opts.baseline_tree else [])
    with tempfile.TemporaryDirectory(prefix="rb-startup-") as tmp:
        work = Path(tmp)
        sshd = start_sshd(work / "sshd")
        try:
            (work / "rb.yml").write_text(ONE_STEP)
            (work / "local.yml").write_text("all:\n  hosts:\n    ctl: {connection: local}\n")
            (work / "ssh.yml").write_text(f"all:\n  hosts:\n    db1:\n{sshd.host_vars_yaml(6)}\n")
            env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(work / "home"), RUNBOOK_LOCK_DIR=str(work / "locks"))
            validate = ["validate", str(ROOT / "runbooks" / "emergency.yml"), "-i", str(ROOT / "inventory" / "local.yml")]
            commands = {
                "validate, no cache": validate,
                "validate, cached": validate,
                "play, 1 step, local": ["play", str(work / "rb.yml"), "-i", str(work / "local.yml")],
                "play, 1 step, ssh": ["play", str(work / "rb.yml"), "-i", str(work / "ssh.yml")],
            }
            # the cached run's cache is filled by a first validate of each tree, before the rounds;
            # one cache directory per tree: the trees' caches have different salts (the engine's
            # templating sources differ), and one shared file would be rewritten by each tree in
            # turn, so every "cached" run would find the other tree's salt and parse everything
            envs = {name: dict(env, RUNBOOK_CACHE_DIR="" if "no cache" in name else str(work / "cache")) for name in commands}
            tree_envs = {(name, label): dict(e, RUNBOOK_CACHE_DIR=str(work / "cache" / str(i))) if e["RUNBOOK_CACHE_DIR"] else e
                         for name, e in envs.items() for i, (label, _) in enumerate(trees)}
            for label, tree in trees:
                a = [x.replace(str(ROOT), str(tree)) if x.startswith(str(ROOT)) else x for x in validate]
                timed(tree, a, tree_envs[("validate, cached", label)])
            results: dict[tuple[str, str], list[tuple[float, float]]] = {}
            loads = []
            for _ in range(opts.rounds):
                for name, args in commands.items():
                    for label, tree in trees:
                        # the baseline validates its own emergency.yml (the SOP changes with the engine)
                        a = [x.replace(str(ROOT), str(tree)) if x.startswith(str(ROOT)) else x for x in args]
                        results.setdefault((name, label), []).append(timed(tree, a, tree_envs[(name, label)]))
                loads.append(os.getloadavg()[0])
            shares = {name: import_share(ROOT, args, tree_envs[(name, trees[0][0])]) for name, args in commands.items()}
        finally:
            sshd.stop()
    print(f"start-up, {opts.rounds} interleaved rounds, medians; load average {statistics.median(loads):.2f} "
          f"on {os.cpu_count()} cores (goal: <= 0.3 s)")
    print(f"{'command':<24} {'engine':<10} {'wall s':>7} {'CPU s':>7}")
    for name in commands:
        for label, _ in trees:
            runs = results[(name, label)]
            print(f"{name:<24} {label:<10} {statistics.median(w for w, _ in runs):7.3f} {statistics.median(c for _, c in runs):7.3f}")
    for name, (total, top) in shares.items():
        heavy = ", ".join(f"{mod} {t * 1000:.0f}" for t, mod in top)
        print(f"  imports of {name} (this tree, one run, wall): {total:.3f} s; heaviest (ms, cumulative): {heavy}")


if __name__ == "__main__":
    main()
