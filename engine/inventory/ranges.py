"""Host names as Ansible reads them: ``host:port``, ``[ipv6]:port`` and ranges.

```ini
db[01:20].example.com      # db01 … db20 (zero padding kept)
db-[a:f]                   # db-a … db-f
web[1:9:2]                 # web1 web3 web5 web7 web9
[2001:db8::1]:2222         # an IPv6 address with a port
```
The grammar follows ansible-core's ``parse_address`` and ``expand_hostname_range`` (the
same acceptance, including their quirks), written here from their documentation and tests.
"""

from __future__ import annotations

import functools
import re
import string

# A range inside brackets: numeric begin:end[:step], or one letter to one letter.
_NUM_RANGE = r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]"
_HEX_RANGE = r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"

_V6 = rf"(?:[0-9a-f]{{1,4}}|{_HEX_RANGE})"
_V4 = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUM_RANGE})"
_LABEL = rf"(?:\w|{_ALNUM_RANGE})(?:[\w-]|{_ALNUM_RANGE})*(?<![_-])"
_DOTTED_V4 = rf"(?:{_V4}\.){{3}}{_V4}"

_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_IPV4 = re.compile(rf"^{_DOTTED_V4}$", re.I)
#: IPv6, compiled when an address with a colon first needs it (≈ half of the import of this
#: module: an inventory of names never needs it); every alternative holds a ":"
_IPV6_RX = (
    "^(?:"
    + "|".join([
        rf"(?:{_V6}:){{7}}{_V6}",
        rf"(?:{_V6}:){{1,6}}:",
        rf"(?:{_V6}:)(?::{_V6}){{1,6}}",
        rf"(?:{_V6}:){{2}}(?::{_V6}){{1,5}}",
        rf"(?:{_V6}:){{3}}(?::{_V6}){{1,4}}",
        rf"(?:{_V6}:){{4}}(?::{_V6}){{1,3}}",
        rf"(?:{_V6}:){{5}}(?::{_V6}){{1,2}}",
        rf"(?:{_V6}:){{6}}(?::{_V6})",
        rf":(?::{_V6}){{1,6}}",
        rf"{_V6}?::",
        rf"(?:0:){{6}}(?:{_V6}\.){{3}}{_V6}",
        rf"::(?:ffff:)?(?:{_V6}\.){{3}}{_V6}",
        rf"(?:0:){{5}}ffff:(?:{_V6}\.){{3}}{_V6}",
    ])
    + ")$"
)
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I | re.UNICODE)


@functools.cache
def _ipv6() -> re.Pattern[str]:
    return re.compile(_IPV6_RX, re.I)


def _is_ipv6(address: str) -> bool:
    return ":" in address and _ipv6().match(address) is not None


class RangeError(ValueError):
    """A host range that cannot be expanded (the message says why)."""


def parse_address(address: str, allow_ranges: bool = False) -> tuple[str, int | None]:
    """``(host, port)`` of ``host``, ``host:port``, ``[host]:port``; ValueError when the
    string is not a host identifier. Ranges are kept (``allow_ranges``) for the caller."""
    port: int | None = None
    # Both forms are tried in turn, the second on what the first left (as Ansible does).
    for rx in (_BRACKETED_PORT, _HOST_PORT):
        m = rx.match(address)
        if m:
            address, port = m.group(1), int(m.group(2))
    if not (_IPV4.match(address) or _is_ipv6(address) or _HOSTNAME.match(address)):
        raise ValueError(f"not a valid network hostname: {address}")
    if not allow_ranges and "[" in address:
        raise ValueError("a range where none is allowed")
    return address, port


def expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """Names and port of an inventory host key (``db[1:3]:2222`` → db1 db2 db3, 2222).
    A key that is not an address is a name as written (Ansible accepts any string)."""
    try:
        name, port = parse_address(pattern, allow_ranges=True)
    except ValueError:
        name, port = pattern, None
    if "[" in name:
        return expand_range(name), port
    return [name], port


def expand_range(line: str) -> list[str]:
    """Expand the first ``[begin:end(:step)]`` of ``line``, then the rest recursively."""
    if line.count("[") < 1 or "]" not in line:
        raise RangeError(f"host range in {line!r} is not closed: write [begin:end]")
    head, _, rest = line.partition("[")
    nrange, sep, tail = rest.partition("]")
    if not sep or "[" in nrange:
        # Ansible swaps the first '[' and the first ']' for separators; anything else is malformed.
        raise RangeError(f"host range in {line!r} is malformed: write [begin:end] or [begin:end:step]")
    bounds = nrange.split(":")
    if len(bounds) not in (2, 3):
        raise RangeError(f"host range [{nrange}] must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise RangeError(f"host range [{nrange}] must give an end value")
    width = len(beg) if beg[0] == "0" and len(beg) > 1 else 0
    if width and width != len(end):
        raise RangeError(f"host range [{nrange}]: begin and end must have the same length when zero-padded")
    try:
        step = int(step_text)
    except ValueError:
        raise RangeError(f"host range [{nrange}]: step {step_text!r} is not a number") from None
    if step == 0:
        raise RangeError(f"host range [{nrange}]: step must not be 0")
    seq: list[str]
    letters = string.ascii_letters
    if beg in letters and end in letters and (beg.isalpha() and end.isalpha()):
        i_beg, i_end = letters.index(beg), letters.index(end)
        if i_beg > i_end:
            raise RangeError(f"host range [{nrange}] must have begin <= end")
        seq = list(letters[i_beg:i_end + 1:step])
    else:
        try:
            numbers = range(int(beg), int(end) + 1, step)
        except ValueError:
            raise RangeError(f"host range [{nrange}]: use numbers or single letters") from None
        if len(numbers) > 100_000:
            raise RangeError(f"host range [{nrange}] gives {len(numbers)} hosts: that is not an inventory")
        seq = [str(n).zfill(width) if width else str(n) for n in numbers]
    out: list[str] = []
    for item in seq:
        name = f"{head}{item}{tail}"
        out.extend(expand_range(name) if "[" in name else [name])
    return out


def is_ip(name: str) -> bool:
    return _IPV4.match(name) is not None or _is_ipv6(name)
