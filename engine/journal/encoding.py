"""Records to JSON lines: secrets masked, MySQL and Python types made plain JSON.

```python
encode({"registered": {"rows": [{"sum": Decimal("12.50"), "at": datetime(2026, 11, 22)}]}})
# '{"registered":{"rows":[{"sum":12.5,"at":"2026-11-22T00:00:00"}]}}'
```
"""

from __future__ import annotations

import enum
import json
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from engine.secrets import MASK, MASKER, Secret

_MAX_DEPTH = 64


def _decimal(value: Decimal) -> Any:
    # Numbers stay numbers when nothing is lost, so a registered SUM() compares as a number
    # in a template after resume; a value a float cannot hold exactly stays an exact string.
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def _convert(value: Any) -> Any:
    """``json.dumps(default=...)``: the non-JSON types that MySQL rows and actions produce.

    What it returns is not masked again by ``json``, so every string it makes goes through
    the masker here.
    """
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return MASKER.text(raw.decode("utf-8"))
        except UnicodeDecodeError:  # a BLOB: hex is unambiguous and greppable
            return raw.hex()
    if isinstance(value, (set, frozenset)):
        return MASKER.data(sorted(value, key=repr))  # sorted: the same set writes the same line
    if isinstance(value, enum.Enum):
        return MASKER.data(value.value)
    if isinstance(value, PurePath):
        return MASKER.text(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _normalise(value: Any, depth: int = 0) -> Any:
    """Slow path for what ``json`` refuses (non-string keys, unknown objects, cycles).

    A journal record must be written even if a registered result holds something odd: losing
    an outcome would turn a finished step into an in-doubt one.
    """
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return MASKER.text(value) if isinstance(value, str) else value
    if isinstance(value, dict):
        return {MASKER.text(k if isinstance(k, str) else str(k)): _normalise(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v, depth + 1) for v in value]
    try:
        return _normalise(_convert(value), depth + 1)
    except TypeError:
        return MASKER.text(repr(value))


# A key the masker masks whatever its value (SECRET_KEY: ends with password, token, ...), as it
# reads in JSON text: the end of a key string, then the colon (and "\n" before it: ``$``).
_SECRET_KEY_JSON = re.compile(r'(?:pass(?:word|wd)?|secret|token|private_key_passphrase|api_key)(?:\\n)?":', re.I)


def _secret_key_in(line: str) -> bool:
    low = line.lower()  # a substring test first: the regex alone costs twice the JSON encoding
    return any(w in low for w in ("pass", "secret", "token", "api_key")) and _SECRET_KEY_JSON.search(line) is not None


#: ``json.dumps(x, default=_convert, ensure_ascii=False, separators=(",", ":"))``, built once:
#: dumps with arguments builds an encoder for every call (two records per step). Reentrant
#: (each call makes its own circular-reference markers), so shared by the worker threads.
_ENCODER = json.JSONEncoder(default=_convert, ensure_ascii=False, separators=(",", ":"))


def encode(fields: dict[str, Any]) -> str:
    """Secrets masked, then one compact JSON object on one line (no newline)."""
    if MASKER.json_safe:
        # The fast path (every step writes two records): JSON first, then the secret values
        # masked in the text, which is exact when every secret reads the same in JSON; a key
        # that asks for masking of its value, or a mask that broke the JSON, takes the walk.
        try:
            line = _ENCODER.encode(fields)
        except (TypeError, ValueError):
            line = ""
        if line and not _secret_key_in(line):
            scrubbed = MASKER.text(line)
            if scrubbed == line:
                return line
            try:
                json.loads(scrubbed)
                return scrubbed
            except ValueError:
                pass
    return walk_encode(fields)


def walk_encode(fields: dict[str, Any]) -> str:
    """The reference encoding :func:`encode` falls back on: every value of the data masked,
    then JSON, then a last pass over the text for keys (the fast path must equal it)."""
    masked = MASKER.data(fields)
    try:
        line = _ENCODER.encode(masked)
    except (TypeError, ValueError):
        return _slow(masked)
    # MASKER.data masks values, not dict keys, and a key can hold a secret: PyMySQL names a
    # column after its expression, as in SELECT PASSWORD('...'). A last pass over the text
    # catches it; it only finds something in that rare case, and then the result is checked
    # to still be JSON, since a corrupt line would make the whole run unreadable.
    scrubbed = MASKER.text(line)
    if scrubbed == line:
        return line
    try:
        json.loads(scrubbed)
    except ValueError:
        return _slow(masked)
    return scrubbed


def _slow(masked: Any) -> str:
    return json.dumps(_normalise(masked), ensure_ascii=False, separators=(",", ":"))


def encode_header(fields: dict[str, Any], verbatim: frozenset[str]) -> str:
    """Like :func:`encode`, but the engine's own paths and identifiers under ``verbatim`` keys
    (and ``@file`` entries of ``extra_vars``) are written as they are: masking a password that
    happens to be a substring of a path (``fuzz`` in ``/srv/fuzz/rb.yml``) would leave resume
    unable to find its files. They are never secrets: the engine made them from file names."""
    masked = json.loads(encode({k: v for k, v in fields.items() if k not in verbatim}))
    out = {k: masked.get(k, fields.get(k)) for k in fields}  # the caller's key order
    for k in verbatim & set(fields):
        out[k] = fields[k]
    if isinstance(fields.get("extra_vars"), list):
        out["extra_vars"] = [raw if isinstance(raw, str) and raw.startswith("@") else shown
                             for raw, shown in zip(fields["extra_vars"], masked.get("extra_vars") or [], strict=False)]
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)
