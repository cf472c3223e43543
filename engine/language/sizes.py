"""Sizes and percentages as people write them in runbooks: ``20G``, ``512M``, ``1.5T``, ``20%``.

Pure functions, no I/O. Units are binary (1K = 1024 bytes), as in ``df -h``, ``du -h`` and
MySQL's own ``max_allowed_packet=64M``: a DBA who writes ``need: 20G`` means what ``df``
shows. ``KB``/``KiB``/``K`` are all accepted and mean the same thing. A bare integer (YAML
``need: 1048576``) or a digits-only string is a number of bytes.

```python
>>> parse_size("1.5G")
1610612736
>>> format_size(1610612736)
'1.5 GiB'
>>> parse_percent("20%")
0.2
```
"""

from __future__ import annotations

import math
import re
from typing import Any

from engine.language.durations import shown

_UNITS: dict[str, int] = {
    "": 1,
    "B": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "P": 1024**5,
    "E": 1024**6,
}

#: The largest size: what a signed 64-bit byte count (a file offset, ``df``, MySQL) can hold.
MAX_BYTES = 2**63 - 1

#: ``20G``, ``1.5 TiB``, ``512mb``, ``100`` (bytes). Used by the JSON Schemas too.
SIZE_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtTpPeE]?)(?:[iI]?[bB])?\s*$"
_SIZE = re.compile(SIZE_PATTERN)

#: ``20%``, ``12.5 %``. A string without ``%`` is refused: ``'20'`` is ambiguous (20 % or 0.2?).
PERCENT_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$"
_PERCENT = re.compile(PERCENT_PATTERN)

#: JSON Schema fragments for action params: a size/percentage as a string or an integer.
SIZE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_BYTES},
        {"type": "string", "pattern": SIZE_PATTERN},
    ]
}
PERCENT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": PERCENT_PATTERN},
    ]
}

_FORMAT_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: an int (bytes) or a string like ``20G``, ``1.5T``, ``512 MiB``.

    Fractional results are rounded up: a need of ``0.1K`` is 103 bytes, never less than asked.
    Raises :class:`ValueError` with a message fit for a validation report.
    """
    size = _bytes(value)
    if size > MAX_BYTES:
        raise ValueError(f"{shown(value)} is larger than any disk (more than 8 EiB)")
    return size


def _bytes(value: str | int) -> int:
    if isinstance(value, bool):  # bool is an int subclass; `need: yes` is a mistake
        raise ValueError(f"{shown(value)} is not a size (e.g. 20G, 512M, 1.5T)")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is not a size: it is negative")
        return value
    if isinstance(value, float):
        if value < 0 or math.isnan(value) or math.isinf(value):
            raise ValueError(f"{value!r} is not a size")
        return math.ceil(value) if value <= MAX_BYTES else MAX_BYTES + 1
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a size (e.g. 20G, 512M, 1.5T)")
    m = _SIZE.match(value) if len(value) <= 100 else None
    if not m:
        raise ValueError(f"{shown(value)} is not a size (e.g. 20G, 512M, 1.5T)")
    number, unit = m.group(1), m.group(2).upper()
    if "." in number:
        scaled = float(number) * _UNITS[unit]
        return math.ceil(scaled) if scaled <= MAX_BYTES else MAX_BYTES + 1
    return int(number) * _UNITS[unit]


def format_size(n: float) -> str:
    """``1610612736`` → ``'1.5 GiB'``; below 1 KiB in bytes (``'512 B'``); one decimal otherwise."""
    if n < 0:
        return "-" + format_size(-n)
    if n < 1024:
        return f"{int(n)} B"
    value = float(n)
    for i, unit in enumerate(_FORMAT_UNITS):
        # Promote when rounding would print "1024.0 MiB" instead of "1.0 GiB".
        if round(value, 1) < 1024 or i == len(_FORMAT_UNITS) - 1:
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_percent(value: str | float) -> float:
    """A fraction from ``'20%'`` (→ 0.2) or a number of percent points (``20`` → 0.2).

    A string must carry its ``%``: ``'20'`` is refused as ambiguous. Over 100 % is allowed
    (a margin of 150 % is a valid, if cautious, choice).
    """
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a percentage (e.g. 20%)")
    if isinstance(value, (int, float)):
        if value < 0 or math.isnan(value) or math.isinf(value):
            raise ValueError(f"{shown(value)} is not a percentage (e.g. 20%)")
        return float(value) / 100.0
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a percentage (e.g. 20%)")
    m = _PERCENT.match(value) if len(value) <= 100 else None
    if not m:
        raise ValueError(f"{shown(value)} is not a percentage (e.g. 20%)")
    return float(m.group(1)) / 100.0


def format_percent(fraction: float) -> str:
    """``0.2`` → ``'20%'``, ``0.125`` → ``'12.5%'``."""
    text = f"{fraction * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def is_size(value: Any) -> bool:
    """True when :func:`parse_size` accepts ``value``."""
    try:
        parse_size(value)
    except ValueError:
        return False
    return True


def is_percent(value: Any) -> bool:
    """True when :func:`parse_percent` accepts ``value``."""
    try:
        parse_percent(value)
    except ValueError:
        return False
    return True
