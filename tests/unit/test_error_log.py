"""engine.mysql.error_log.LogTail over the local shell: the last start, growth, a growing line, rotation."""

from __future__ import annotations

from pathlib import Path

from engine.mysql.error_log import LogTail
from engine.transport.local import LocalShell

CORPUS = Path(__file__).resolve().parents[1] / "data" / "recovery_logs"
START = "2026-11-30  4:50:24 0 [Note] Starting MariaDB 10.11.19-MariaDB source revision x as process 999\n"


def test_from_the_last_start_then_what_is_appended(tmp_path: Path) -> None:
    log = tmp_path / "mysqld.err"
    log.write_text((CORPUS / "mariadb-10.11-crash-rollback.log").read_text())
    tail = LogTail(LocalShell(), str(log))
    text = tail.since_last_start()
    assert text.startswith("2026-11-30  4:41:11 0 [Note] Starting MariaDB") and text.count("as process") == 1
    assert tail.read_new() == ("", False)
    with log.open("a") as f:
        f.write("2026-11-30  4:41:14 0 [Note] one more\nInnoDB: Progress in percent: 5 6")
    assert tail.read_new() == ("2026-11-30  4:41:14 0 [Note] one more\n", False)
    assert tail.partial == "InnoDB: Progress in percent: 5 6"  # still being written
    with log.open("a") as f:
        f.write(" 7\n")
    assert tail.read_new() == ("InnoDB: Progress in percent: 5 6 7\n", False)


def test_a_start_glued_after_aborting_and_a_replaced_file(tmp_path: Path) -> None:
    log = tmp_path / "mysqld.err"
    log.write_text((CORPUS / "mariadb-10.11-fatal-missing-tablespace.log").read_text() + "\n2026-11-30  4:50:23 0 [ERROR] Aborting" + START)
    tail = LogTail(LocalShell(), str(log))
    assert tail.since_last_start() == START
    log.write_text(START + "2026-11-30  4:50:25 0 [Note] x\n")  # rotated: a new, shorter file
    text, reset = tail.read_new()
    assert reset and text.startswith(START)
    missing = LogTail(LocalShell(), str(tmp_path / "nope.err"))
    assert not missing.exists() and missing.since_last_start() == ""



def test_an_unreadable_log_is_not_called_missing() -> None:
    """A log only the mysql/adm group may read (the usual /var/log/mysql/error.log) says so."""
    import os
    import shutil
    import tempfile

    import pytest

    from engine.errors import ActionError

    d = tempfile.mkdtemp(prefix="rbt_log_")
    try:
        os.chmod(d, 0o755)
        log = Path(d) / "mysqld.err"
        log.write_text(START)
        log.chmod(0)
        # root reads every file: the container's tests run as root, so read as nobody
        shell = _AsUser("nobody") if os.geteuid() == 0 else LocalShell()
        with pytest.raises(ActionError, match="cannot read it"):
            LogTail(shell, str(log)).exists()
        assert not LogTail(shell, str(Path(d) / "other.err")).exists()  # a missing one is just missing
    finally:
        shutil.rmtree(d)


class _AsUser(LocalShell):
    """The local shell as another user."""

    def __init__(self, user: str):
        super().__init__()
        self.user = user

    def run(self, cmd: str, **kwargs):  # type: ignore[no-untyped-def,override]
        import shlex

        return super().run(f"su -s /bin/sh {self.user} -c {shlex.quote(cmd)}", **kwargs)
