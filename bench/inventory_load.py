"""How long loading an inventory takes, runbook vs ansible-core (when installed), for an INI
inventory of N hosts in 20 groups with group_vars/ and host_vars/ beside it.

    python bench/inventory_load.py [N ...]     # default: 100 1000 5000
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.inventory import load_inventories, match_pattern


def make(d: Path, n: int) -> Path:
    lines = []
    for g in range(20):
        lines.append(f"[g{g}]")
        lines += [f"db{i:05d}.example.com mysql_port={3306 + g}" for i in range(g, n, 20)]
        lines.append(f"[g{g}:vars]\nlevel=g{g}")
    lines.append("[dbs:children]\n" + "\n".join(f"g{g}" for g in range(20)))
    (d / "hosts.ini").write_text("\n".join(lines) + "\n")
    (d / "group_vars").mkdir()
    (d / "group_vars" / "all.yml").write_text("mysql_user: dba\n")
    (d / "group_vars" / "dbs.yml").write_text("mysql_via: tunnel\n")
    (d / "host_vars").mkdir()
    for i in range(0, n, 50):
        (d / "host_vars" / f"db{i:05d}.example.com.yml").write_text("mysql_identity: pinned\n")
    return d / "hosts.ini"


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000, 5000]
    ansible = shutil.which("ansible-inventory")
    print(f"{'hosts':>6} {'runbook load':>13} {'pattern':>9} {'ansible-inventory --list':>25}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = make(Path(tmp), n)
            t0 = time.perf_counter()
            inv = load_inventories([str(path)])
            t1 = time.perf_counter()
            picked = match_pattern("dbs:!g3:&g1[0:9]", inv)
            t2 = time.perf_counter()
            theirs = "-"
            if ansible:
                a0 = time.perf_counter()
                subprocess.run([ansible, "-i", str(path), "--list"], capture_output=True, check=True)
                theirs = f"{time.perf_counter() - a0:.2f}s"
            assert len(inv.hosts) == n and picked
            print(f"{n:>6} {t1 - t0:>12.3f}s {1000 * (t2 - t1):>7.1f}ms {theirs:>25}")


if __name__ == "__main__":
    main()
