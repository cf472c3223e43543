"""Masking by key is for secrets, not for counts: verify registers ``summary: {pass, fail,
warn}``, and a journal that masked ``pass: 11`` as a password made a resumed run render
"verify ******** pass" (and see every step that reads it as changed since it started)."""

from __future__ import annotations

from engine.report.text import masked
from engine.secrets import MASK, MASKER


def test_a_count_under_a_secret_looking_key_is_kept() -> None:
    summary = {"summary": {"pass": 11, "fail": 0, "warn": 1}, "ok": True}
    assert MASKER.data(summary) == summary
    assert masked(summary) == summary


def test_a_string_under_a_secret_looking_key_is_masked() -> None:
    data = {"db_pass": "hunter2-xyz", "password": "s3cret-value", "api_token": "tok", "pass": "x", "empty_password": ""}
    assert MASKER.data(data) == {"db_pass": MASK, "password": MASK, "api_token": MASK, "pass": MASK, "empty_password": ""}
    assert masked(data)["db_pass"] == MASK and masked(data)["password"] == MASK
