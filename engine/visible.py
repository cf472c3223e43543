"""Control characters made visible before text reaches a terminal, a report or a rendered view.

Step names, messages, SQL errors and above all another host's command output may hold escape
sequences: ``\\x1b[2J`` clears the operator's screen, ``\\x1b]0;...\\x07`` retitles the
window, a carriage return overwrites a line, a right-to-left override reverses what follows.
Shown raw, they let a compromised host (or a pasted line) lie to the operator. Every such
character is written as an escape instead, colour or not::

    >>> visible("ok\\x1b[31m red\\x07")
    'ok\\\\x1b[31m red\\\\x07'
    >>> visible("two\\nlines", newlines=False)
    'two\\\\nlines'
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, the Unicode line/paragraph separators and
# the bidirectional overrides/isolates (U+202A-U+202E, U+2066-U+2069).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_ONE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, newlines: bool = True) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``);
    newlines and tabs are kept unless ``newlines`` is False (one-line messages)."""
    pattern = _UNSAFE if newlines else _UNSAFE_ONE_LINE
    if not text or pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def visible_json(text: str) -> str:
    """JSON text with the control characters that ``json.dumps(ensure_ascii=False)`` leaves raw
    (C1, bidirectional overrides) written as ``\\uNNNN``: still the same JSON, now safe to print.
    Outside strings JSON has no such characters, so every one is inside a string."""
    if not text or _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
