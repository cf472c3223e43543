"""What validation learned of each template, kept across processes (``runbook validate`` and
``play`` of a runbook seen before skip Jinja2's parser for the templates they already know).

An entry is the analysis of one template **text** — its compile error or None, the names it
reads, the names it reads under a guard, the names it reads through ``hostvars[h].x`` and
whether it reads ``hostvars`` in a way that may reach any name — which depends on nothing but that text and the code
that analyses it: not on the file it came from, an include, the inventory, vars files or -e
(the cross-checks that use those run every time). So an entry is keyed by the SHA-256 of the
text, and the whole file by a salt of everything the analysis depends on: the Python version,
the bytes of the engine's templating modules (the filters, tests and globals, the sandbox,
the quick paths) and the size and modification time of every Jinja2 module. Any change to
them makes every entry unknown, and the file is written anew. A damaged or unreadable file
is an empty cache; a cache that cannot be written is no cache.

Where: ``$RUNBOOK_CACHE_DIR`` (empty: no cache), else ``$XDG_CACHE_HOME/runbook``, else
``~/.cache/runbook``; the file is ``templates.json``, the user's own (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

#: entries kept at most; past it the file keeps only what this process used
MAX_ENTRIES = 5_000
#: a larger file is not ours to read (ours stays well under it): an empty cache
MAX_BYTES = 4 << 20
FILE_NAME = "templates.json"
_ENGINE_MODULES = ("render.py", "environment.py", "values.py", "sandbox.py", "quick.py", "shared_cache.py")

Entry = tuple[str | None, frozenset[str], frozenset[str], frozenset[str], bool]


def cache_dir() -> Path | None:
    explicit = os.environ.get("RUNBOOK_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):  # no home to expand "~" to: no cache, rather than a "~" here
        return None
    return Path(base) / "runbook"


def salt() -> str | None:
    """What the analysis of a template depends on besides its text; None when it cannot be
    told (a module unreadable), and then nothing is cached."""
    import importlib.util

    h = hashlib.sha256(sys.version.encode())
    try:
        here = Path(__file__).parent
        for name in _ENGINE_MODULES:
            h.update(name.encode() + b"\0" + (here / name).read_bytes())
        spec = importlib.util.find_spec("jinja2")
        if spec is None or not spec.submodule_search_locations:
            return None
        for location in spec.submodule_search_locations:
            for entry in sorted(os.scandir(location), key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    st = entry.stat()
                    h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    except OSError:
        return None
    return h.hexdigest()


def _key(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


class SharedCache:
    """The file's entries under this salt; :meth:`save` writes what this process added."""

    def __init__(self, directory: Path, salt: str):
        self.path = directory / FILE_NAME
        self.salt = salt
        self._entries: dict[str, Any] = {}
        self._used: set[str] = set()
        self._added = False
        try:
            if self.path.stat().st_size > MAX_BYTES:
                raise ValueError("not a cache of ours")
            data = json.loads(self.path.read_bytes())
            if isinstance(data, dict) and data.get("salt") == salt and isinstance(data.get("entries"), dict):
                self._entries = data["entries"]
        except (OSError, ValueError):
            pass  # no file yet, or a damaged one: an empty cache

    def get(self, source: str) -> Entry | None:
        key = _key(source)
        found = self._entries.get(key)
        if not (isinstance(found, list) and len(found) == 5 and (found[0] is None or isinstance(found[0], str))
                and all(isinstance(x, list) and all(isinstance(n, str) for n in x) for x in found[1:4])
                and isinstance(found[4], bool)):
            return None  # absent, or not an entry as this module writes them: analysed again
        self._used.add(key)
        return found[0], frozenset(found[1]), frozenset(found[2]), frozenset(found[3]), found[4]

    def put(self, source: str, entry: Entry) -> None:
        key = _key(source)
        self._entries[key] = [entry[0], sorted(entry[1]), sorted(entry[2]), sorted(entry[3]), entry[4]]
        self._used.add(key)
        self._added = True

    def save(self) -> None:
        if not self._added:
            return
        entries = self._entries
        if len(entries) > MAX_ENTRIES:
            entries = {k: v for k, v in entries.items() if k in self._used}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".templates-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump({"salt": self.salt, "entries": entries}, fh, separators=(",", ":"))
                os.replace(tmp, self.path)  # whole or not at all: a reader never sees half a file
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            return  # a read-only home: no cache, nothing else changes
        self._added = False


def open_shared_cache() -> SharedCache | None:
    """The user's cache of template analyses, or None (disabled, or the salt unknown)."""
    directory = cache_dir()
    if directory is None:
        return None
    s = salt()
    return SharedCache(directory, s) if s is not None else None
