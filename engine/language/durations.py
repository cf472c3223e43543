"""Durations as people write them: ``90``, ``30s``, ``5m``, ``1h30m``, ``250ms``, ``2d``."""

from __future__ import annotations

import math
import re
from typing import Any

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.I)
_FULL = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+$", re.I)
_FACTOR = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

#: The longest duration a runbook may give: ten years. Deadlines are computed as timestamps
#: (``datetime``, ``time.monotonic() + t``) and waits go to ``threading``/sockets, whose limits
#: (year 9999, ``threading.TIMEOUT_MAX`` ≈ 292 years) a bigger value would pass — turning
#: ``budget: 10000000000`` into a traceback in the middle of a run instead of an error now.
MAX_SECONDS = 3650 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds. Raises ValueError with a message a user can act on."""
    seconds = _seconds(value)
    if seconds > MAX_SECONDS:
        raise ValueError(f"{shown(value)} is longer than the 3650d (ten years) a wait may last")
    return seconds


def shown(value: Any) -> str:
    """A value as a message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:30] + "…"


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a duration (e.g. 30s, 5m, 1h30m)")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):  # YAML .nan / .inf
            raise ValueError(f"{shown(value)} is not a duration (e.g. 30s, 5m, 1h30m)")
        if value < 0:
            raise ValueError(f"{shown(value)} is negative")
        if value > MAX_SECONDS:  # float() of a 400-digit int would overflow
            return math.inf
        return float(value)
    text = str(value).strip()
    if len(text) > 100:
        raise ValueError(f"{shown(value)} is not a duration (e.g. 30s, 5m, 1h30m)")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if not _FULL.match(text):
        raise ValueError(f"{shown(value)} is not a duration (e.g. 30s, 5m, 1h30m)")
    return sum(float(n) * _FACTOR[u.lower()] for n, u in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """``0.004`` → ``4ms``; ``75`` → ``1m15s``; ``3725`` → ``1h02m05s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s"
