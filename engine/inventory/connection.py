"""Connection settings of a host (SSH and MySQL), and what a run refuses on the hosts it
targets: connections we cannot use, ``ansible_become``, proxy commands in SSH arguments,
``!vault`` values, a malformed ``mysql_option_file``.

```yaml
db1: {ansible_host: 10.0.0.5, ansible_user: dba, mysql_option_file: ~/.my.cnf}
```
A host the run does not target may carry any of these: it is loaded, shown by ``runbook
inventory``, and never refused.
"""

from __future__ import annotations

import os
import shlex
from typing import Any


from engine.errors import ConnectError, InputError, Problem, Source
from engine.model import Host, HostKeyPolicy, MysqlSettings, SshSettings
from engine.secrets import SECRET_KEY, Secret
from engine.templating.render import ENGINE, is_undefined, lazify
from engine.transport.become import Become

_TRUE = (True, "true", "True", "yes", "on", "1", 1)


def _undefined_reason(key: str, value: Any) -> str | None:
    if is_undefined(value):
        return getattr(value, "_undefined_hint", None) or f"{key} is undefined"
    return None


def render_host_var(host: Host, key: str, default: Any = None) -> Any:
    value = host.vars.get(key, default)
    why = _undefined_reason(key, value)
    if why:
        raise InputError(f"host {host.name}: {why}", source=host.source)
    if isinstance(value, str) and "{{" in value:
        value = ENGINE.render(value, dict(lazify(host.vars), inventory_hostname=host.name))
        if SECRET_KEY.search(key) and isinstance(value, str):
            value = Secret(value)
    return value


def _secret(value: Any) -> Secret | None:
    if value is None:
        return None
    return value if isinstance(value, Secret) else Secret(str(value))


def ssh_settings(host: Host) -> SshSettings:
    try:
        return _ssh_settings(host)
    except (ValueError, TypeError) as exc:  # a templated port or timeout that rendered to nonsense
        raise ConnectError(f"host {host.name}: bad SSH settings: {exc}", hint="fix the inventory variables") from None


def mysql_settings(host: Host) -> MysqlSettings:
    try:
        return _mysql_settings(host)
    except (ValueError, TypeError) as exc:
        raise ConnectError(f"host {host.name}: bad MySQL settings: {exc}", hint="fix the inventory variables") from None


def _ssh_settings(host: Host) -> SshSettings:
    v = lambda k, d=None: render_host_var(host, k, d)
    policy = str(v("ssh_host_key_checking", "strict")).lower()
    if policy in ("true", "yes", "on"):
        policy = "strict"
    if policy in ("false", "no"):
        policy = "off"
    try:
        hk = HostKeyPolicy(policy)
    except ValueError:
        raise InputError(f"host {host.name}: ssh_host_key_checking must be strict, accept-new or off, not {policy!r}", source=host.source) from None
    args, _ = ssh_args_options(host)
    if "ssh_host_key_checking" not in host.vars and "host_key_checking" in args:
        hk = HostKeyPolicy(args["host_key_checking"])
    key = v("ssh_key") or args.get("key_file")
    known = v("ssh_known_hosts") or args.get("known_hosts")
    config = v("ssh_config") or args.get("config_file")
    return SshSettings(
        host=str(v("ssh_host", host.name)),
        # 22 also means "not set": a Port in ~/.ssh/config then applies (see transport.ssh).
        port=int(v("ssh_port", None) or args.get("port") or 22),
        user=v("ssh_user") or args.get("user"),
        key_file=os.path.expanduser(str(key)) if key else None,
        password=_secret(v("ssh_password")),
        host_key_checking=hk,
        known_hosts=os.path.expanduser(str(known)) if known else None,
        config_file=os.path.expanduser(str(config)) if config else None,
        connect_timeout=float(v("ssh_connect_timeout", None) or args.get("connect_timeout") or 10),
        proxy_jump=args.get("proxy_jump"),
        proxy_command=args.get("proxy_command"),
    )


# --------------------------------------------------------------------------- ssh arguments

_SSH_ARGS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")  # the order Ansible passes them
# -o options that change nothing for a paramiko connection (connection sharing, keepalives, logging).
_HARMLESS = frozenset(o.lower() for o in (
    "ControlMaster", "ControlPersist", "ControlPath", "ServerAliveInterval", "ServerAliveCountMax", "TCPKeepAlive",
    "Compression", "LogLevel", "PreferredAuthentications", "PasswordAuthentication", "PubkeyAuthentication",
    "IdentitiesOnly", "GSSAPIAuthentication", "KbdInteractiveAuthentication", "HashKnownHosts", "CheckHostIP",
    "AddKeysToAgent", "BatchMode", "ConnectionAttempts", "RequestTTY", "ChallengeResponseAuthentication",
))
_HARMLESS_FLAGS = frozenset({"-C", "-q", "-v", "-vv", "-vvv", "-T", "-t", "-tt", "-n", "-x", "-a", "-k"})
_OPTION_KEYS = {"proxycommand": "proxy_command", "proxyjump": "proxy_jump", "userknownhostsfile": "known_hosts",
                "connecttimeout": "connect_timeout", "port": "port", "user": "user", "identityfile": "key_file"}
_FLAG_KEYS = {"-J": "proxy_jump", "-p": "port", "-l": "user", "-i": "key_file", "-F": "config_file"}


def ssh_args_options(host: Host) -> tuple[dict[str, Any], list[str]]:
    """What ``ansible_ssh_args``/``_common_args``/``_extra_args`` ask of SSH, as OpenSSH reads
    Ansible's command line (the first value of an option wins), and what we cannot honour."""
    out: dict[str, Any] = {}
    unsupported: list[str] = []
    for var in _SSH_ARGS:
        text = host.vars.get(var)
        if not isinstance(text, str) or not text.strip():
            continue
        try:
            tokens = shlex.split(text)
        except ValueError as exc:
            unsupported.append(f"{var} cannot be read ({exc})")
            continue
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "-o" or (tok.startswith("-o") and len(tok) > 2):
                opt = tokens[i + 1] if tok == "-o" and i + 1 < len(tokens) else tok[2:]
                i += 2 if tok == "-o" else 1
                name, _, value = opt.partition("=") if "=" in opt else opt.partition(" ")
                key, value = name.strip().lower(), value.strip()
                if key == "stricthostkeychecking":
                    out.setdefault("host_key_checking", {"no": "off", "off": "off", "accept-new": "accept-new"}.get(value.lower(), "strict"))
                elif key in _OPTION_KEYS:
                    out.setdefault(_OPTION_KEYS[key], value.split()[0] if key == "userknownhostsfile" and value else value)
                elif key not in _HARMLESS:
                    unsupported.append(f"-o {opt} (in {var})")
            elif tok[:2] in _FLAG_KEYS:
                value = tok[2:] or (tokens[i + 1] if i + 1 < len(tokens) else "")
                i += 1 if tok[2:] else 2
                out.setdefault(_FLAG_KEYS[tok[:2]], value)
            elif tok in _HARMLESS_FLAGS:
                i += 1
            else:
                unsupported.append(f"{tok} (in {var})")
                i += 1
    if "connect_timeout" in out:
        try:
            out["connect_timeout"] = float(out["connect_timeout"])
        except ValueError:
            unsupported.append(f"ConnectTimeout={out.pop('connect_timeout')}")
    if "port" in out and not str(out["port"]).isdigit():
        unsupported.append(f"port {out.pop('port')}")
    return out, unsupported


def _mysql_settings(host: Host) -> MysqlSettings:
    v = lambda k, d=None: render_host_var(host, k, d)
    via = str(v("mysql_via", "direct"))
    if via not in ("direct", "tunnel"):
        raise InputError(f"host {host.name}: mysql_via must be direct or tunnel, not {via!r}", source=host.source)
    default_host = "127.0.0.1" if host.connection == "local" or via == "tunnel" else str(v("ssh_host", host.name))
    opt = v("mysql_option_file")
    option_file = os.path.expanduser(str(opt)) if opt else None
    if option_file:
        why = option_file_problem(option_file)
        if why:
            raise InputError(why[0], source=why[1], hint="an option file has [client] sections of name=value lines, as ~/.my.cnf")
    return MysqlSettings(
        host=str(v("mysql_host", default_host)),
        port=int(v("mysql_port", 3306)),
        user=v("mysql_user"),
        password=_secret(v("mysql_password")),
        database=v("mysql_database"),
        socket=v("mysql_socket"),
        option_file=option_file,
        via=via,
        connect_timeout=float(v("mysql_connect_timeout", 10)),
        identity=v("mysql_identity"),
    )


def option_file_problem(path: str) -> tuple[str, Source] | None:
    """Why a MySQL option file cannot be read the way PyMySQL reads it (configparser), with
    the line; None when it is readable or absent (absence is reported when connecting)."""
    if not os.path.isfile(path):
        return None
    import configparser  # only for an inventory that names an option file

    parser = configparser.RawConfigParser(allow_no_value=True, strict=False)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh, source=path)
    except UnicodeDecodeError:
        return f"mysql_option_file {path} is not UTF-8 text", Source(path, 1, 1)
    except OSError as exc:
        return f"cannot read mysql_option_file {path}: {exc.strerror}", Source(path)
    except configparser.MissingSectionHeaderError as exc:
        return f"mysql_option_file {path}: a setting before any [section] header", Source(path, exc.lineno, 1)
    except configparser.ParsingError as exc:
        line = exc.errors[0][0] if exc.errors else 1
        return f"mysql_option_file {path}: line {line} is not name=value", Source(path, line, 1)
    except configparser.Error as exc:
        return f"mysql_option_file {path} is malformed: {exc.message.splitlines()[0]}", Source(path, getattr(exc, "lineno", 1) or 1, 1)
    return None


# --------------------------------------------------------------------------- become

_BECOME_PASSWORDS = ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password")


def _host_value(host: Host, key: str, default: Any = None) -> Any:
    value = host.vars.get(key, default)
    why = _undefined_reason(key, value)
    if why:  # a vaulted become setting without the vault password, say
        raise InputError(f"host {host.name}: {why}", source=host.source)
    if isinstance(value, str) and "{{" in value:
        value = ENGINE.render(value, dict(lazify(host.vars), inventory_hostname=host.name))
    return value


def become_settings(host: Host) -> Become | None:
    """``ansible_become`` as runbook honours it: every command through ``sudo -n -u USER``.
    What we cannot honour faithfully (another method, a password to type) is refused."""
    if _host_value(host, "ansible_become", False) not in _TRUE:
        return None
    user = str(_host_value(host, "ansible_become_user", "root") or "root")
    method = str(_host_value(host, "ansible_become_method", "sudo"))
    if method not in ("sudo", "ansible.builtin.sudo"):
        raise InputError(f"host {host.name} becomes {user} with ansible_become_method: {method}; runbook only uses sudo",
                         source=host.source, hint="use sudo (runbook runs sudo -n -u USER), or write the command into the shell step")
    exe = _host_value(host, "ansible_become_exe")
    if exe not in (None, "", "sudo"):
        raise InputError(f"host {host.name}: ansible_become_exe {exe!r} is not supported (runbook runs sudo)", source=host.source)
    if any(is_undefined(host.vars.get(k)) or host.vars.get(k) not in (None, "") for k in _BECOME_PASSWORDS):
        raise InputError(f"host {host.name} has a become password: runbook runs sudo -n, which never types one",
                         source=host.source, hint=f"allow {user} through sudo without a password (NOPASSWD) for the SSH user, or drop ansible_become")
    flags = _host_value(host, "ansible_become_flags")
    try:
        return Become(user=user, flags=tuple(shlex.split(str(flags))) if flags else ())
    except ValueError as exc:
        raise InputError(f"host {host.name}: ansible_become_flags {flags!r} cannot be read: {exc}", source=host.source) from None


# --------------------------------------------------------------------------- targeted hosts


def target_problems(host: Host) -> list[Problem]:
    """What makes a run on ``host`` impossible or unfaithful to the inventory, said before
    anything runs (the host is one the run targets)."""
    out: list[Problem] = []
    where = host.source or Source("inventory")
    if host.connection not in ("ssh", "local"):
        out.append(Problem(where, f"hosts.{host.name}.ansible_connection",
                           f"host {host.name} uses connection {host.connection!r}, which runbook cannot use",
                           "runbook connects over SSH (also for ansible_connection: paramiko) or locally; target other hosts, or use --limit"))
    try:
        become_settings(host)
    except InputError as exc:
        out.append(Problem(where, f"hosts.{host.name}.ansible_become", exc.message, exc.hint))
    if host.connection == "ssh":
        _, unsupported = ssh_args_options(host)
        if unsupported:
            out.append(Problem(where, f"hosts.{host.name}.ansible_ssh_common_args",
                               f"host {host.name}: SSH arguments runbook cannot pass to its SSH connection: {', '.join(unsupported)}",
                               "runbook honours ProxyCommand, ProxyJump (-J), StrictHostKeyChecking, UserKnownHostsFile, "
                               "ConnectTimeout, Port, User, IdentityFile and -F; put anything else in ~/.ssh/config or drop it"))
    for key, value in host.vars.items():
        why = _undefined_reason(key, value)
        if why and (key.startswith(("ssh_", "ansible_")) or key == "connection"):
            out.append(Problem(where, f"hosts.{host.name}.{key}", f"host {host.name}: {why}"))
    opt = host.vars.get("mysql_option_file")
    if isinstance(opt, str) and "{{" not in opt:
        why2 = option_file_problem(os.path.expanduser(opt))
        if why2:
            out.append(Problem(why2[1], f"hosts.{host.name}.mysql_option_file", why2[0],
                               "an option file has [client] sections of name=value lines, as ~/.my.cnf"))
    return out
