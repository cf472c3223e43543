"""What a run knows while it runs: each host's state and the run-wide settings steps need.

Shared by the executor, its probing mixin, play, recovery and rollback (none imports another
for these)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.model import Host
from engine.run.context import Connections
from engine.templating.render import lazify

if TYPE_CHECKING:
    from engine.journal import Journal


@dataclass
class HostState:
    """What the run knows about one host: its connections and its registered facts."""

    host: Host
    conns: Connections
    facts: dict[str, Any] = field(default_factory=dict)  # registered results and set_fact values
    failed: bool = False
    unreachable: bool = False
    lazy_vars: dict[str, Any] = field(default_factory=dict)
    #: check mode: the first step that would change this host (later probes see the host as
    #: it is, not as it would be), and the registered results that were only simulated
    would_change: str = ""
    simulated: dict[str, str] = field(default_factory=dict)  # register -> step name

    def __post_init__(self) -> None:
        self.lazy_vars = lazify(self.host.vars)

    @property
    def active(self) -> bool:
        return not (self.failed or self.unreachable)


@dataclass
class StepEnv:
    """Run-wide settings the executor needs."""

    run_id: str
    check_mode: bool
    journal: Journal | None
    journal_dir: str
    extra_vars: dict[str, Any]
    runbook_vars: dict[str, Any]
    magic: Callable[[HostState, str], dict[str, Any]]
    run_state: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str, int, int | None, str], None] = lambda host, done, total, label: None
    warn: Callable[[str], None] = lambda msg: None
    diff: bool = False
    #: set at the operator's first Ctrl-C: waits (pause) end at once
    interrupted: threading.Event = field(default_factory=threading.Event)
    #: ask the operator a question from a worker thread (answered on the main thread)
    ask: Callable[[str], str | None] | None = None
    #: another inventory host's connections by name (see ``Play.peer``)
    peers: Callable[[str], Connections] | None = None


def variables(env: StepEnv, hs: HostState, stage: str) -> dict[str, Any]:
    """Precedence: inventory (all < groups < host) < runbook vars < registered/set_fact < -e."""
    out = dict(hs.lazy_vars)
    out.update(env.runbook_vars)
    out.update(hs.facts)
    out.update(env.extra_vars)
    out.update(env.magic(hs, stage))
    return out
