"""Helpers shared by the report model and formats: masking, printable evidence, times, numbers.

```python
masked({"password": "x", "cmd": "mysql -ps3cr3t"})   # {"password": "********", "cmd": "mysql -p********"}
format_ts("2026-11-22T03:15:02.123456+00:00")         # "2026-11-22 03:15:02 UTC"
```
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from engine.language.durations import format_duration, parse_duration
from engine.secrets import MASK, MASKER, SECRET_KEY, Secret, secret_like
from engine.visible import visible

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_EVENT_SKIP = frozenset({"type", "seq", "ts", "kind"})


def masked(value: Any) -> Any:
    """A JSON-safe copy of ``value`` with every secret masked: keys, values, Secrets.

    Non-finite floats become strings (JSON has no NaN), unknown objects their masked ``str``.
    """
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        return MASKER.text(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = MASKER.text(k if isinstance(k, str) else str(k))
            out[key] = MASK if SECRET_KEY.search(key) and secret_like(v) else masked(v)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [masked(v) for v in value]
    return MASKER.text(str(value))


def printable(text: str) -> str:
    """Text for people: terminal colour codes dropped, other control characters (C0, C1,
    bidirectional overrides) as ``\\xNN`` / ``\\uNNNN``; newlines and tabs kept.

    Evidence is often the tail of a command's output; the JSON report keeps it as it was.
    """
    return visible(_ANSI.sub("", text))


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one journal timestamp to another, or None when either is missing."""
    try:
        return max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def format_ts(ts: str | None) -> str:
    """``2026-11-22T03:15:02.123456+00:00`` → ``2026-11-22 03:15:02 UTC``; ``—`` when unknown."""
    if not ts:
        return "—"
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return ts
    zone = "UTC" if when.utcoffset() is not None and not when.utcoffset() else when.strftime("%z")
    return f"{when:%Y-%m-%d %H:%M:%S} {zone}".rstrip()


def fmt_duration(seconds: float | None) -> str:
    """:func:`~engine.language.durations.format_duration`, or ``—`` when unknown."""
    return "—" if seconds is None else format_duration(seconds)


def number(value: float | None) -> str:
    """``1333.3`` → ``1,333``; ``2.1`` → ``2.1``; ``—`` when unknown."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def count(value: int | None) -> str:
    """``120000`` → ``120,000``; ``—`` when unknown."""
    return "—" if value is None else f"{value:,}"


def event_details(event: dict[str, Any]) -> str:
    """``stage=restore budget=300`` from an event's own fields."""
    parts = []
    for k, v in event.items():
        if k in _EVENT_SKIP or v is None or v == "" or v == []:
            continue
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        parts.append(f"{k}={v}")
    return " ".join(parts)


def split_key(key: str) -> tuple[str, str]:
    """``"restore/load dump/part 1"`` → ``("restore", "load dump/part 1")``: stage names have no '/'."""
    stage, sep, step = key.partition("/")
    return (stage, step) if sep else ("", key)


def as_int(value: Any) -> int | None:
    """``value`` if it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def as_budget(value: Any) -> float | None:
    """A budget in seconds from ``300``, ``"5m"``..., or None when absent or unreadable."""
    if value is None or value == "":
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None
