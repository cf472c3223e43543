"""``--check`` runs only SQL that cannot change anything: a ``SELECT … INTO OUTFILE`` hidden
behind a comment or odd spacing is a write (the server creates the file) and is not run."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.cliutil import cli, out_of
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("spelling", ["INTO/**/OUTFILE", "INTO -- why\n      OUTFILE", "/*!50100 INTO OUTFILE */",
                                      "INTO/**/DUMPFILE"])
def test_check_mode_does_not_write_a_file(tmp_path: Path, spelling: str) -> None:
    # A directory the server (another user) can reach and write: pytest's tmp_path is 0700.
    out = Path(tempfile.mkdtemp(prefix="rbt_outfile_", dir="/tmp"))
    os.chmod(out, 0o777)
    target = out / "leak.txt"
    try:
        _play_check(tmp_path, spelling, target)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _play_check(tmp_path: Path, spelling: str, target: Path) -> None:
    (tmp_path / "inv.yml").write_text(textwrap.dedent(f"""\
        all:
          vars: {{mysql_host: {MYSQL_HOST}, mysql_port: {MYSQL_PORT}, mysql_user: {MYSQL_USER}{", mysql_password: " + MYSQL_PASSWORD if MYSQL_PASSWORD else ""}}}
          hosts:
            db1: {{connection: local}}
        """))
    query = f"SELECT 'secret' {spelling} '{target}'"
    if spelling.startswith("/*!"):  # the whole clause inside the executable comment
        query = f"SELECT 'secret' /*!50100 INTO OUTFILE '{target}' */"
    (tmp_path / "rb.yml").write_text(textwrap.dedent("""\
        name: check mode writes nothing
        targets: db1
        stages:
          - name: s
            steps:
              - name: Export
                sql: |
                  {query}
        """).replace("{query}", query.replace("\n", "\n      ")))
    res = cli("play", "rb.yml", "-i", "inv.yml", "--check", cwd=tmp_path, home=tmp_path / "home", timeout=120)
    text = out_of(res)
    assert res.returncode == 0, text
    assert not target.exists(), text
    assert "would run" in text, text
