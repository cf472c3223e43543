"""The SOPs of SPEC §7 are shipped and each documents the command that runs it (that each one
validates is tests/cli/test_validate_cli.py::test_shipped_runbooks_validate)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (ROOT / "runbooks").glob("*.yml"))


def test_the_sops_of_the_spec_are_shipped() -> None:
    assert {"emergency.yml", "drill.yml", "crash-recovery.yml", "partial-restore.yml", "failover.yml"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_runbook_documents_itself(name: str) -> None:
    """A header comment saying what it is for and how to run it (SPEC §7)."""
    lines = (ROOT / "runbooks" / name).read_text().splitlines()
    comments = []
    for ln in lines:  # the leading comment block
        if not ln.startswith("#"):
            break
        if "yaml-language-server" not in ln:
            comments.append(ln)
    assert len(comments) >= 2 and any("runbook play" in ln for ln in comments), f"{name}: no header comment with its command"
