"""A variable with a secret-looking name (``*_password``, ``*_token``, ``*_secret``, ``api_key``)
written as a literal value is a secret wherever it is written — the runbook's ``vars:``, ``-e``
or the inventory — exactly as a vaulted or ``lookup('env')`` value is: a shell step that echoes
it must not show it on the console, in the journal or in a report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RUNBOOK = """name: literal secrets
{vars}stages:
  - name: s
    steps:
      - name: Echo it
        shell: "echo token={{{{ notify_token }}}} key={{{{ api_key }}}} pw={{{{ app_password }}}}"
        register: out
      - name: Say it again
        assert: {{that: ["out.stdout | length > 0"], success_msg: "{{{{ out.stdout }}}}"}}
      - name: Fail with it
        fail: {{msg: "the token was {{{{ notify_token }}}}"}}
"""


@pytest.mark.parametrize("where", ["vars", "extra", "inventory"])
def test_a_literal_secret_named_var_never_shows(tmp_path: Path, where: str) -> None:
    token, key, pw = "s3cr3t-value", "k3y-value-91", "pw-lit-7741"
    rb = tmp_path / "rb.yml"
    # runbook vars win over the inventory's: the token is written in one place only
    rb.write_text(RUNBOOK.format(vars=f"vars:\n  notify_token: {token}\n" if where == "vars" else ""))
    inv = tmp_path / "inv.yml"
    host_vars = f"      api_key: {key}\n      app_password: {pw}\n"
    if where == "inventory":
        host_vars += f"      notify_token: {token}\n"
    inv.write_text("all:\n  hosts:\n    localhost:\n      connection: local\n" + host_vars)
    args = ["-e", f"notify_token={token}"] if where == "extra" else []
    report = tmp_path / "report.json"
    md = tmp_path / "report.md"
    env = dict(os.environ, NO_COLOR="1", RUNBOOK_HOME=str(tmp_path / "home"))
    res = subprocess.run([sys.executable, "-m", "engine.cli", "play", str(rb), "-i", str(inv), "-vv", "--report", str(report),
                          *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out  # the fail step
    assert "token=********" in out, out  # the step ran and echoed it, masked
    run_id = next(line.split()[1] for line in res.stdout.splitlines() if line.startswith("RUN_ID"))
    subprocess.run([sys.executable, "-m", "engine.cli", "report", run_id, "--format", "md", "-o", str(md)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    texts = {"console": out, "report": report.read_text(), "markdown": md.read_text()}
    texts |= {str(p): p.read_text() for p in (tmp_path / "home").rglob("*") if p.is_file()}
    for secret in (token, key, pw):
        leaked = [name for name, text in texts.items() if secret in text]
        assert not leaked, f"{secret} ({where}) in {leaked}"
