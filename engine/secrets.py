"""Secrets are a type, and they are masked by value everywhere.

A :class:`Secret` never shows its value in ``str``/``repr``/JSON. Every secret value the engine
learns is also registered in a process-wide :class:`Masker`, so that a password that leaks into
a command's stderr, an SQL error message or a registered result is still replaced by ``********``
before it reaches the console, the journal or a report.
"""

from __future__ import annotations

import base64
import functools
import re
import threading
from typing import Any

MASK = "********"

# Keys whose values are secrets whatever they hold (inventory vars, -e vars, runbook vars).
SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|private_key_passphrase|api_key)$", re.I)


class Secret:
    """A string that does not print itself. ``reveal()`` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value
        MASKER.add(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return "Secret(********)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def reveal(value: Any) -> Any:
    """The plain value of a Secret, or the value itself."""
    return value.reveal() if isinstance(value, Secret) else value


def transforms(value: str) -> set[str]:
    """``value`` and the forms a template or a shell line easily turns it into: ``upper``,
    ``lower``, ``capitalize``/``title``, reversed (``| reverse``), base64 (standard and URL-safe,
    padded or not, of the value and of the value plus the newline ``echo`` adds), and hex (lower
    and upper case). Anything else — a substring, a hash, a value spliced into a longer base64
    stream, another encoding — is not recognised."""
    out = {value, value.upper(), value.lower(), value.capitalize(), value.title(), value[::-1]}
    raw = value.encode("utf-8", "surrogatepass")
    for data in (raw, raw + b"\n"):
        for enc in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()):
            out |= {enc, enc.rstrip("=")}
    out |= {raw.hex(), raw.hex().upper()}
    return out


_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f\u2028\u2029]')  # what json.dumps writes differently


class Masker:
    """Replaces every registered secret value in text and in nested data."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        #: every registered value is written the same inside a JSON string (no quote,
        #: backslash or control character): masking JSON text then masks exactly the values
        self.json_safe = True

    def add(self, value: str) -> None:
        # Very short values would mask innocent text ("a", "1"); they are weak passwords anyway.
        if not isinstance(value, str) or len(value) < 3 or value in self._values:
            return
        with self._lock:
            self._values.update(v for v in transforms(value) if len(v) >= 3)
            self.json_safe = self.json_safe and not _JSON_ESCAPED.search(value)
            longest_first = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in longest_first))

    def text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def data(self, value: Any) -> Any:
        """A copy of ``value`` with secrets masked: strings, lists, dicts, Secrets. Text under
        a secret-looking key (``password``, ``token``...) is masked whatever it says; a number
        or a boolean there is a count or a flag (verify's ``summary: {pass: 11}``), not a
        secret (a numeric password from an inventory is a :class:`Secret` already)."""
        pattern = self._pattern
        secret_key = self._secret_key

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return pattern.sub(MASK, v) if pattern is not None and v else v
            if isinstance(v, dict):
                return {k: (MASK if isinstance(k, str) and secret_key(k) and secret_like(x) else walk(x)) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [walk(x) for x in v]
            if isinstance(v, Secret):
                return MASK
            return v

        return walk(value)

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _secret_key(key: str) -> bool:
        # The same few keys (rows' columns, changed, failed, ...) come back on every record.
        return SECRET_KEY.search(key) is not None

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None
            self.json_safe = True


def secret_like(value: Any) -> bool:
    """A value a secret-looking key may hide: text (not empty), a Secret, a container of them."""
    if isinstance(value, bool) or value is None or value == "":
        return False
    return not isinstance(value, (int, float))


MASKER = Masker()


def mask_literal_secrets(values: Any) -> None:
    """Register with the masker every literal value held under a secret-looking name in these
    variables (the runbook's ``vars:``, ``-e``), nested mappings included: ``notify_token:
    s3cr3t`` written in a runbook is as secret as a vaulted one. A template (``{{ lookup('env',
    ...) }}``) is registered once rendered (engine.run.runner.register_templated_secrets)."""
    if isinstance(values, dict):
        for key, value in values.items():
            if isinstance(key, str) and SECRET_KEY.search(key):
                if isinstance(value, str) and "{{" not in value:
                    MASKER.add(value)
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    MASKER.add(str(value))  # a numeric password is still a password
            mask_literal_secrets(value)
    elif isinstance(values, list):
        for value in values:
            mask_literal_secrets(value)
