"""The engine's values: runbooks, hosts, results. All frozen or plainly typed; no magic dicts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Source
from engine.secrets import Secret

# --------------------------------------------------------------------------- runbook


@dataclass(frozen=True)
class Step:
    """One step: exactly one action plus Ansible-style keywords.

    ```yaml
    - name: Count users
      sql: SELECT COUNT(*) AS n FROM users
      register: users
      when: check_mode or schema == 'shop'
    ```
    """

    name: str
    action: str
    args: Any  # raw (unrendered) action arguments: a string or a mapping
    source: Source
    stage: str
    index: int
    when: Any = None
    register: str | None = None
    loop: Any = None
    loop_var: str = "item"
    retries: int | None = None
    delay: float = 1.0
    until: Any = None
    failed_when: Any = None
    changed_when: Any = None
    ignore_errors: bool = False
    timeout: float | None = None
    tags: tuple[str, ...] = ()
    run_once: bool = False
    unless: Any = None
    creates: Any = None
    undo: Any = None  # mapping {action: args} or None
    idempotent: bool | None = None  # declared by the runbook; None: the engine decides
    targets: str | None = None
    # The raw mapping as written, for digests (resume refuses a changed step).
    raw: Any = None

    @property
    def key(self) -> str:
        """Stable identity in the journal: ``stage/step``."""
        return f"{self.stage}/{self.name}"

    @classmethod
    def build(cls, **values: Any) -> Step:
        """``Step(**values)``, as the loader builds one per step of a runbook: the frozen
        dataclass's ``__init__`` sets its 26 fields one ``object.__setattr__`` at a time, which
        cost ~40 k instructions per step; this fills the instance's dict at once. Values that
        ``__init__`` would refuse (a missing or unknown field) go through it, and it raises."""
        if cls is not Step or not _STEP_REQUIRED <= values.keys() <= _STEP_FIELDS:
            return cls(**values)
        step = object.__new__(cls)
        attrs = step.__dict__
        attrs.update(_STEP_DEFAULTS)
        attrs.update(values)
        return step


def _step_fields() -> tuple[frozenset[str], frozenset[str], dict[str, Any]]:
    from dataclasses import MISSING, fields

    all_fields = fields(Step)
    if any(f.default_factory is not MISSING for f in all_fields):
        # Step.build copies defaults: a default_factory (a fresh list per step) would be shared
        raise TypeError("Step.build needs plain defaults")
    return (frozenset(f.name for f in all_fields), frozenset(f.name for f in all_fields if f.default is MISSING),
            {f.name: f.default for f in all_fields if f.default is not MISSING})


_STEP_FIELDS, _STEP_REQUIRED, _STEP_DEFAULTS = _step_fields()


class OnFailure(str, enum.Enum):
    ABORT = "abort"
    ROLLBACK = "rollback"
    CONTINUE = "continue"


@dataclass(frozen=True)
class Stage:
    name: str
    steps: tuple[Step, ...]
    source: Source
    index: int
    budget: float | None = None  # seconds
    confirm: str | None = None
    on_failure: OnFailure = OnFailure.ABORT
    when: Any = None
    targets: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Runbook:
    name: str
    path: str
    stages: tuple[Stage, ...]
    source: Source
    description: str = ""
    targets: str = "all"
    vars: dict[str, Any] = field(default_factory=dict)
    budget: float | None = None
    files: tuple[str, ...] = ()  # the runbook and every file it includes (for digests)
    #: runbook-level keys that configure an action for the whole run (``notify:``, see
    #: engine.actions.registry.RUN_KEYS): key -> its raw (unrendered) arguments
    channels: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- inventory


class HostKeyPolicy(str, enum.Enum):
    STRICT = "strict"
    ACCEPT_NEW = "accept-new"
    OFF = "off"


@dataclass(frozen=True)
class SshSettings:
    host: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    password: Secret | None = None
    host_key_checking: HostKeyPolicy = HostKeyPolicy.STRICT
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    config_file: str | None = None  # None: ~/.ssh/config when it exists
    connect_timeout: float = 10.0
    proxy_jump: str | None = None  # ProxyJump from the inventory (ansible_ssh_common_args); else ~/.ssh/config's
    proxy_command: str | None = None  # ProxyCommand from the inventory (%h %p %r expanded when connecting); else the config's


@dataclass(frozen=True)
class MysqlSettings:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str | None = None
    password: Secret | None = None
    database: str | None = None
    socket: str | None = None
    option_file: str | None = None
    via: str = "direct"  # direct | tunnel
    connect_timeout: float = 10.0
    identity: str | None = None  # @@hostname or server_uuid that this host must be


@dataclass(frozen=True)
class Host:
    """A host of the inventory with its merged variables (all < groups < host)."""

    name: str
    vars: dict[str, Any]
    groups: tuple[str, ...]
    connection: str = "ssh"  # ssh | local
    source: Source | None = None


# --------------------------------------------------------------------------- transport results


@dataclass(frozen=True)
class CommandResult:
    cmd: str
    rc: int
    stdout: str
    stderr: str
    duration: float


@dataclass(frozen=True)
class SqlResult:
    """The outcome of one SQL statement."""

    sql: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    rowcount: int
    duration: float
    warnings: int = 0  # the server's warning count for the statement
    info: str = ""  # the server's info line for multi-row statements: "Records: 3  Duplicates: 1  Warnings: 0"

    @property
    def returns_rows(self) -> bool:
        return bool(self.columns)


# --------------------------------------------------------------------------- step results


class Status(str, enum.Enum):
    OK = "ok"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNREACHABLE = "unreachable"

    @property
    def is_failure(self) -> bool:
        return self in (Status.FAILED, Status.UNREACHABLE)


@dataclass
class StepResult:
    """What one step did on one host.

    ``data`` holds the action-specific registered fields (``rc``/``stdout`` for shell,
    ``rows``/``rowcount`` for sql, ``free_bytes`` for disk_space, ...); :meth:`registered`
    merges them with the common fields every step has.
    """

    status: Status
    msg: str = ""
    duration: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    evidence: str = ""  # command/SQL and last lines of output, shown on failure
    undo: Any = None  # how to undo this step (journaled), or None
    diff: str = ""
    warnings: list[str] = field(default_factory=list)
    items: list[StepResult] | None = None  # per-item results of a loop
    ignored: bool = False  # failed, but ignore_errors let the host go on
    #: failed, and whether it took effect is unknown (sent, then timed out or lost): the
    #: journal records the outcome ``unknown`` and resume treats the step as in doubt
    uncertain: bool = False

    @property
    def changed(self) -> bool:
        return self.status is Status.CHANGED

    @property
    def failed(self) -> bool:
        return self.status.is_failure

    def registered(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.data)
        out.update(
            changed=self.status is Status.CHANGED,
            failed=self.status.is_failure,
            skipped=self.status is Status.SKIPPED,
            unreachable=self.status is Status.UNREACHABLE,
            status=self.status.value,
            ignored=self.ignored,
            msg=self.msg,
            duration=round(self.duration, 6),
        )
        if self.items is not None:
            out["results"] = [r.registered() for r in self.items]
        return out
