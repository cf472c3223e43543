"""An internal error writes its traceback to crash.log in the journal dir: masked, mode 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.secrets import MASKER, Secret


def test_crash_log_is_masked_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import engine.run.runner as runner
    from engine.cli.main import main

    monkeypatch.setenv("RUNBOOK_HOME", str(tmp_path / "home"))
    Secret("s3cr3t-in-a-frame")

    def boom(journal_dir: str | None) -> str:
        password = "s3cr3t-in-a-frame"
        raise RuntimeError(f"a bug that shows {password}")

    monkeypatch.setattr(runner, "list_runs_text", boom)
    try:
        with pytest.raises(SystemExit) as exc:
            main.main(args=["runs"], prog_name="runbook")
        assert exc.value.code == 1
        log = tmp_path / "home" / "crash.log"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        text = log.read_text()
        assert "RuntimeError" in text and "s3cr3t-in-a-frame" not in text
        assert "s3cr3t-in-a-frame" not in capsys.readouterr().err
    finally:
        MASKER.clear()
