"""Long fuzz run of ``runbook validate``: seeded mutations of runbooks and inventories.

    python bench/fuzz.py --n 20000            # 20,000 runbook cases and 20,000 // 4 inventory cases
    python bench/fuzz.py --n 2000 --kind inventory --seed 7

Each case runs in-process through the CLI (``tests.fuzz.harness``) inside a worker process;
the parent watches it, so even a hang that no signal interrupts (a C loop) is caught: the
worker is killed, the case counted as a hang, and a fresh worker goes on. Prints, per kind:
exit codes, internal errors, rejections without a position, hangs, the slowest cases, and the
seeds of every failure (``make_case(corpus(kind), seed)`` rebuilds one).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _worker(conn: Any, kind: str, seeds: list[int], limit_s: float) -> None:
    from tests.fuzz.harness import extra_args, run_case
    from tests.fuzz.mutate import corpus, make_case

    texts = corpus(kind)
    work = Path(tempfile.mkdtemp(prefix="runbook-fuzz-"))
    for seed in seeds:
        conn.send(("start", seed))
        case = make_case(texts, seed)
        extra = extra_args(seed) if kind == "runbook" else ()
        o = run_case(case, kind, work, limit_s=limit_s, extra=extra)
        kind_of = "hang" if o.hang else "internal" if o.internal else "unlocated" if o.problems else f"exit {o.exit_code}"
        detail = o.problems[0] if o.problems else o.output.strip().splitlines()[-1] if o.output.strip() else ""
        conn.send(("done", seed, kind_of, o.seconds, o.ops, detail[:240]))
    conn.send(("end",))


def run(kind: str, seeds: list[int], limit_s: float) -> dict[str, Any]:
    counts: collections.Counter[str] = collections.Counter()
    failures: list[tuple[int, str, list[str], str]] = []
    slow: list[tuple[float, int, list[str]]] = []
    todo = list(seeds)
    ctx = mp.get_context("fork")
    start = time.perf_counter()
    while todo:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, kind, todo, limit_s), daemon=True)
        proc.start()
        child.close()  # so that a worker that dies gives EOF here, not silence
        current: int | None = None
        while True:
            # the worker's own watchdog fires at limit_s; this one only if even that cannot
            if not parent.poll(limit_s * 3 + 10):
                proc.kill()
                proc.join()
                assert current is not None
                counts["hang"] += 1
                failures.append((current, "hang", [], f"no answer in {limit_s * 3 + 10:.0f}s (killed)"))
                todo = todo[todo.index(current) + 1:]
                break
            try:
                msg = parent.recv()
            except EOFError:  # the worker died (a crash of the interpreter itself)
                proc.join()
                counts["died"] += 1
                failures.append((current or -1, "died", [], f"worker exit code {proc.exitcode}"))
                todo = todo[todo.index(current) + 1:] if current is not None else []
                break
            if msg[0] == "start":
                current = msg[1]
            elif msg[0] == "done":
                _, seed, what, seconds, ops, detail = msg
                counts[what] += 1
                slow.append((seconds, seed, ops))
                if what in ("hang", "internal", "unlocated"):
                    failures.append((seed, what, ops, detail))
            else:
                proc.join()
                todo = []
                break
    slow.sort(reverse=True)
    return {"counts": counts, "failures": failures, "slow": slow[:8], "seconds": time.perf_counter() - start,
            "n": len(seeds), "median": sorted(s for s, _, _ in slow)[len(slow) // 2] if slow else 0.0}


def report(kind: str, r: dict[str, Any]) -> None:
    c = r["counts"]
    print(f"\n{kind}: {r['n']} cases in {r['seconds']:.0f}s (median {r['median'] * 1000:.0f} ms per case)")
    for key in sorted(k for k in c if k.startswith("exit")):
        print(f"  {key}: {c[key]}")
    for key in ("internal", "unlocated", "hang", "died"):
        print(f"  {key}: {c.get(key, 0)}")
    print("  slowest: " + ", ".join(f"seed {seed} {ops} {s:.2f}s" for s, seed, ops in r["slow"]))
    for seed, what, ops, detail in r["failures"][:30]:
        print(f"  FAIL seed {seed} {what} {ops}: {detail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="runbook cases (inventories get a quarter)")
    ap.add_argument("--kind", choices=["runbook", "inventory", "both"], default="both")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--limit", type=float, default=5.0, help="seconds a case may take before it counts as a hang")
    args = ap.parse_args()
    kinds = ["runbook", "inventory"] if args.kind == "both" else [args.kind]
    bad = 0
    for kind in kinds:
        n = args.n if kind == "runbook" or args.kind != "both" else max(1, args.n // 4)
        r = run(kind, list(range(args.seed, args.seed + n)), args.limit)
        report(kind, r)
        bad += sum(r["counts"].get(k, 0) for k in ("internal", "unlocated", "hang", "died"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
