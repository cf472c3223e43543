"""SSH keys for the SSH adapter: the server's host key against known_hosts, and our own keys.

Host keys are checked the way OpenSSH checks them, under the inventory's
``ssh_host_key_checking`` policy; client keys come from files or the agent. Like
:mod:`engine.transport.ssh`, nothing here lets a paramiko or OS exception out: a problem is a
one-line :class:`ConnectError` with a hint, or a key that is quietly skipped when ssh skips it too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import paramiko

from engine.errors import ConnectError
from engine.model import HostKeyPolicy

_KNOWN_HOSTS_LOCK = threading.Lock()  # parallel hosts may accept-new into one file
_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], tuple[tuple[int, int, int], Any]] = {}
T = TypeVar("T")


def by_file(kind: str, path: str, parse: Callable[[str], T]) -> T:
    """``parse(path)``, once per version of the file: a fleet of hosts shares one ssh config,
    one known_hosts and one key, and each connection would otherwise read and parse them
    again. A file that changes (accept-new appends to known_hosts) is read again."""
    st = os.stat(path)
    version = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _CACHE_LOCK:
        hit = _CACHE.get((kind, path))
    if hit is not None and hit[0] == version:
        return cast(T, hit[1])
    value = parse(path)
    with _CACHE_LOCK:
        _CACHE[(kind, path)] = (version, value)
    return value


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as OpenSSH prints it: ``SHA256:`` + unpadded base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


# -- host keys --------------------------------------------------------------------------
def known_keys(path: str, name: str) -> dict[str, paramiko.PKey]:
    """The keys known_hosts holds for ``name`` (plain or hashed entries), by key type.

    Read line by line and filtered to this host: paramiko's ``HostKeys.load`` gives up on the
    whole file at one bad line (ssh skips it) and indexes every entry. ``@cert-authority`` and
    ``@revoked`` lines are not supported and are skipped.
    """
    if not os.path.isfile(path):
        return {}
    try:
        lines = by_file("known_hosts", path, _read_lines)
    except OSError as exc:
        raise ConnectError(f"cannot read known_hosts {path}: {exc.strerror or exc}") from None
    found: dict[str, paramiko.PKey] = {}
    for line in lines:
        if line.startswith("@") or (name.split("]")[0].lstrip("[") not in line and "|1|" not in line):
            continue  # cheap pre-filter: a plain entry for this host names it literally
        entry = _entry(line)
        if entry is not None and any(
            h == name or (h.startswith("|1|") and paramiko.HostKeys.hash_host(name, h) == h) for h in entry.hostnames
        ):
            found.setdefault(entry.key.get_name(), entry.key)
    return found


def _read_lines(path: str) -> tuple[str, ...]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return tuple(f.readlines())


@functools.lru_cache(maxsize=4096)
def _entry(line: str) -> paramiko.hostkeys.HostKeyEntry | None:
    try:
        return paramiko.hostkeys.HostKeyEntry.from_line(line)
    except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
        return None


def prefer_known_key_types(transport: paramiko.Transport, known: dict[str, paramiko.PKey]) -> None:
    """Ask for the key type known_hosts holds, so a server with several keys is not a mismatch."""
    wanted: list[str] = []
    for kind in known:
        wanted += ["rsa-sha2-512", "rsa-sha2-256", kind] if kind == "ssh-rsa" else [kind]
    opts = transport.get_security_options()
    first = [k for k in wanted if k in opts.key_types]
    opts.key_types = first + [k for k in opts.key_types if k not in first]


def check_host_key(
    key: paramiko.PKey,
    known: dict[str, paramiko.PKey],
    path: str,
    *,
    policy: HostKeyPolicy,
    known_name: str,
    hostname: str,
    port: int,
) -> None:
    """Accept the server's ``key`` for ``known_name`` under ``policy``, or raise ConnectError.

    ``known`` is what :func:`known_keys` read from ``path``; with ``accept-new``, a host that
    has no entry yet is added to ``path``.
    """
    if policy is HostKeyPolicy.OFF:
        return
    if known:
        stored = known.get(key.get_name())
        if stored is not None and stored.asbytes() == key.asbytes():
            return
        old = stored or next(iter(known.values()))
        raise ConnectError(
            f"host key for {known_name} CHANGED (possible man-in-the-middle attack): {path} has "
            f"{old.get_name()} {fingerprint(old)}, the server offers {key.get_name()} {fingerprint(key)}",
            hint=f"if the server was reinstalled, verify the new key and run: ssh-keygen -R '{known_name}' -f {path}",
        )
    if policy is HostKeyPolicy.STRICT:
        raise ConnectError(
            f"host key for {known_name} is not in {path} (the server offers {key.get_name()} {fingerprint(key)})",
            hint=f"check the fingerprint and add it with: ssh-keyscan -p {port} {hostname} >> {path}"
            " — or set ssh_host_key_checking: accept-new",
        )
    remember_host_key(path, known_name, key)


def remember_host_key(path: str, name: str, key: paramiko.PKey) -> None:
    """Append ``name``'s key to known_hosts (accept-new), creating the file and its directory."""
    line = f"{name} {key.get_name()} {key.get_base64()}\n".encode()
    try:
        with _KNOWN_HOSTS_LOCK:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # do not glue our entry onto an unterminated last line
                os.write(fd, line)
            finally:
                os.close(fd)
    except OSError as exc:
        raise ConnectError(f"cannot add the host key of {name} to {path}: {exc.strerror or exc}") from None


# -- client keys ------------------------------------------------------------------------
def load_key(path: str, *, required: bool) -> paramiko.PKey | None:
    """The private key in ``path``; ``None`` for an optional key that is missing or unusable."""
    if not os.path.isfile(path):
        if required:
            raise ConnectError(f"ssh key {path} does not exist", hint="fix ssh_key in the inventory")
        return None
    try:
        return by_file("key", path, paramiko.PKey.from_path)  # any type paramiko knows (paramiko >= 3.2)
    except paramiko.PasswordRequiredException:
        problem, hint = "is protected by a passphrase", "load it into ssh-agent (ssh-add) and unset ssh_key"
    except (paramiko.SSHException, paramiko.pkey.UnknownKeyType, OSError, ValueError) as exc:
        problem, hint = f"cannot be loaded: {str(exc).split('. ')[0]}", "is it a private key (not the .pub)?"
    if required:  # an optional default key that does not load is skipped, as ssh does
        raise ConnectError(f"ssh key {path} {problem}", hint=hint)
    return None


def agent_keys() -> tuple[paramiko.PKey, ...]:
    """The keys ssh-agent offers (``SSH_AUTH_SOCK``); none when there is no usable agent."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return ()
    try:
        return tuple(paramiko.Agent().get_keys())
    except (paramiko.SSHException, OSError, EOFError):  # a stale agent socket is not worth failing for
        return ()
