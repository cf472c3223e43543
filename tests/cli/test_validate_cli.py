"""`runbook validate` as the operator runs it: exit 2 on every broken runbook, one line per
problem (``file:line:col: path: message — hint``), all problems at once, sorted, and never a
Python traceback. And a drift test: every shipped runbook validates.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.unit.test_loader import EXPECTED

ROOT = Path(__file__).resolve().parents[2]
BAD = "tests/cli/bad"
LOCAL = "inventory/local.yml"


def runbook(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, NO_COLOR="1", **(env or {}))
    full_env.setdefault("RUNBOOK_HOME", str(Path(tempfile.gettempdir()) / "runbook-validate-tests"))
    proc = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr, proc.stderr
    return proc


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize("fname", sorted(EXPECTED))
def test_bad_runbook(fname: str) -> None:
    path = f"{BAD}/{fname}"
    proc = runbook("validate", path, "-i", LOCAL)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""  # nothing claims the file is fine
    lines = error_lines(proc)
    expected = EXPECTED[fname]
    assert len(lines) == len(expected), proc.stderr
    for line, (ln, col, needles, hint) in zip(lines, expected):
        assert line.startswith(f"{path}:{ln}:{col}: "), line
        message, _, hint_text = line.partition(" — ")
        for needle in needles:
            assert needle in message, line
        if hint is not None:
            assert hint in hint_text, line


def test_problems_are_sorted_by_line() -> None:
    proc = runbook("validate", f"{BAD}/many_problems.yml", "-i", LOCAL)
    positions = [tuple(map(int, re.match(r"[^:]+:(\d+):(\d+):", ln).groups())) for ln in error_lines(proc)]  # type: ignore[union-attr]
    assert len(positions) == 7
    assert positions == sorted(positions)


def test_missing_file() -> None:
    proc = runbook("validate", f"{BAD}/no_such_file.yml", "-i", LOCAL)
    assert proc.returncode == 2
    assert "no_such_file.yml" in proc.stderr and "does not exist" in proc.stderr


def test_directory() -> None:
    proc = runbook("validate", BAD, "-i", LOCAL)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr


def test_missing_inventory() -> None:
    proc = runbook("validate", "runbooks/hello.yml", "-i", "inventory/nope.yml")
    assert proc.returncode == 2
    assert "inventory/nope.yml" in proc.stderr and "does not exist" in proc.stderr


def test_limit_matching_no_host() -> None:
    proc = runbook("validate", "runbooks/hello.yml", "-i", LOCAL, "--limit", "db*")
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "--limit: pattern 'db*' matches no host; hosts and groups: all, localhost, primary, ungrouped — fix --limit"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("schema", "-e #1: 'schema' is not KEY=VALUE, @file.yml or a JSON/YAML mapping — e.g. -e schema=shop"),
        ("1x=2", "-e #1: '1x' is not a valid variable name"),
        ("@missing-vars.yml", "does not exist"),
        ("@{list}", "a vars file is a mapping of names to values"),
    ],
)
def test_bad_extra_vars(tmp_path: Path, value: str, needle: str) -> None:
    lst = tmp_path / "list.yml"
    lst.write_text("- a\n- b\n")
    proc = runbook("validate", "runbooks/hello.yml", "-i", LOCAL, "-e", value.replace("{list}", str(lst)))
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    if value.startswith("@{"):
        assert lines[0].startswith(f"{lst}:1:1: ")


def test_every_input_problem_at_once(tmp_path: Path) -> None:
    """Runbook, inventory, -e and --limit problems in one report."""
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hostz:\n    h1: {}\n")
    proc = runbook("validate", f"{BAD}/step_actions.yml", "-i", str(inv), "-e", "oops", "--limit", "x")
    assert proc.returncode == 2
    text = proc.stderr
    assert "unknown key 'hostz' in group all — did you mean 'hosts'?" in text
    assert "-e #1: 'oops' is not KEY=VALUE" in text
    assert "exactly one action, found none" in text


def test_undefined_variable_made_valid_by_e(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text("name: x\nstages:\n  - name: s\n    steps:\n      - name: t\n        shell: echo {{ where }}\n")
    bad = runbook("validate", str(rb))
    assert bad.returncode == 2
    assert error_lines(bad) == [f"{rb}:6:16: stages[0].steps[0].shell: variable 'where' is not defined anywhere — "
                                "define it in vars:, the inventory or -e, or register it in an earlier step"]
    good = runbook("validate", str(rb), "-e", "where=here")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"ok: {rb} is valid — 1 stages, 1 steps, 1 host(s)")


def test_raw_sql_warns_but_validates(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text("name: x\nvars: {c: id}\nstages:\n  - name: s\n    steps:\n      - name: q\n        sql: SELECT {{ c | raw }} FROM t\n")
    proc = runbook("validate", str(rb))
    assert proc.returncode == 0
    assert proc.stderr.startswith(f"warning: {rb}:7:14: ") and "'| raw' splices text" in proc.stderr


def _header_args(path: Path) -> list[str]:
    """The -i/-e options of the `runbook play|validate` line in a runbook's header comment
    (continued over several comment lines with a trailing backslash). An inventory that exists
    only once a lab is up (``.runbook/lab/inventory.yml``) is left out: validate then uses the
    local one."""
    header: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if header and header[-1].endswith("\\"):
            header[-1] = header[-1][:-1] + " " + text
        else:
            header.append(text)
    for text in header:
        m = re.search(r"runbook (?:play|validate) (\S+)(.*)$", text)
        if m:
            words = shlex.split(m.group(2))
            picked = [w for i, w in enumerate(words) if w in ("-i", "-e") or (i and words[i - 1] in ("-i", "-e"))]
            out: list[str] = []
            for opt, value in zip(picked[::2], picked[1::2]):
                if opt == "-i" and not (ROOT / value).exists():
                    continue
                out += [opt, value]
            return out
    return []


RUNBOOKS = sorted((ROOT / "runbooks").glob("*.yml"))


@pytest.mark.parametrize("path", RUNBOOKS, ids=[p.name for p in RUNBOOKS])
def test_shipped_runbooks_validate(path: Path) -> None:
    args = _header_args(path)
    if "-i" not in args:
        args += ["-i", LOCAL]
    proc = runbook("validate", str(path.relative_to(ROOT)), *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")


def test_there_are_shipped_runbooks() -> None:
    assert any(p.name == "hello.yml" for p in RUNBOOKS)
    assert _header_args(ROOT / "runbooks" / "hello.yml") == ["-i", "inventory/local.yml"]


_MODULES_AFTER = """
import runpy, sys
sys.argv = ["runbook", *sys.argv[1:]]
try:
    runpy.run_module("engine.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("exit", code, "jinja2", "jinja2" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_validating_a_runbook_seen_before_does_not_import_jinja2(path: Path, tmp_path: Path) -> None:
    """A second validate has every template's analysis from the cache (or from the quick path):
    Jinja2 — a tenth of validate's start-up — is imported only when a template must be parsed
    (engine/templating/render.py, TemplateEngine.jinja). The first run fills the cache."""
    args = _header_args(path)
    if "-i" not in args:
        args += ["-i", LOCAL]
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_CACHE_DIR=str(tmp_path / "cache"),
               RUNBOOK_HOME=str(tmp_path / "home"))
    cmd = [sys.executable, "-c", _MODULES_AFTER, "validate", str(path.relative_to(ROOT)), *args]
    for _ in range(2):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        assert proc.stdout.startswith("ok: "), proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[-1] == "exit 0 jinja2 False", proc.stderr
