"""The action contract: probe, then change.

An action declares its capabilities and its params JSON Schema; the executor (not the action)
decides what to do with them:

* ``probe()`` is read-only and says whether anything needs doing (``Probe.done``) and what the
  state is now. ``None`` means the action cannot tell (a plain ``shell`` step).
* check mode: a read-only action runs; a mutating one reports ``probe().would`` and stops.
* otherwise ``apply()`` runs; a mutating action with a probe is probed again afterwards and the
  step fails when it did not converge.
* resume: an in-doubt step is probed; ``done`` → recorded done; not done and ``idempotent`` →
  run again; otherwise the operator decides.
* undo: ``apply()`` returns a :class:`StepResult` whose ``undo`` is a JSON-able record; on
  rollback ``undo(record)`` is called on a fresh instance of the same action class. When a
  probe finds the change already made by an earlier attempt of this run (a kill between the
  change and its outcome), ``undo_of_found(probe)`` gives the same record, so no undo is lost,
  and ``result_of_found(probe)`` gives what ``apply`` registers (later steps read it: a
  restore's ``rows`` and ``tables``, a snapshot's ``snapshot_schema``), so a step recorded done
  from its probe registers the same result as one whose outcome the journal kept; when the
  probe finds the change only partly made, ``undo_of_partial(probe)`` gives the record of that part.
* identity: before a call that may change the server (``changes_nothing()`` is false) the
  executor checks the server is the one the host must be, as ``identity_guard`` says.

The core reads only these capabilities and hooks; it never branches on an action's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from engine.language.durations import parse_duration
from engine.model import StepResult

if TYPE_CHECKING:
    from engine.run.context import ActionContext


@dataclass
class Probe:
    """A read-only look at the state: is the change already made, and what would it do."""

    done: bool
    state: dict[str, Any] = field(default_factory=dict)
    would: str = ""  # what apply() would change, for check mode and --diff


class Action:
    """Base class of every action. One subclass per module in ``engine/actions/``."""

    name: ClassVar[str]
    #: JSON Schema of the (rendered) arguments; strings are accepted where templates may go.
    params_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    #: may change the host or the database
    mutating: ClassVar[bool] = True
    #: safe to run again when a previous attempt is in doubt
    idempotent: ClassVar[bool] = False
    #: has a built-in undo
    reversible: ClassVar[bool] = False
    #: args are a free-form string (shell, sql) rather than a mapping
    free_form: ClassVar[bool] = False
    #: the action renders its own args (sql binds ``{{ }}`` as parameters)
    renders_own_args: ClassVar[bool] = False
    #: argument keys that hold conditions (Jinja2 expressions without braces, like ``when``):
    #: validation checks their syntax and their variables as it does a ``when``
    condition_params: ClassVar[tuple[str, ...]] = ()
    #: its built-in undo may run again when an earlier attempt of it is in doubt
    undo_idempotent: ClassVar[bool] = False
    #: what the executor checks before a change: "mysql" (the server's identity, connecting
    #: if need be), "known" (only when the host pins ``mysql_identity`` or the run already saw
    #: its server: a shell command on a host that may run no MySQL), "" (nothing)
    identity_guard: ClassVar[str] = "mysql"
    #: registered fields of a successful result that mark a place of the run, which later steps
    #: on the same host look up by the mark's name (:func:`run_mark`): ``stop_writes`` declares
    #: ``{"fence": "binlog"}`` — where this run fenced the host, the end of what
    #: ``binlog_replay`` may replay (the run's own writes come after it)
    run_marks: ClassVar[dict[str, str]] = {}
    #: the argument that carries a line of text, when the action can be the run's channel (a
    #: runbook-level key of :data:`engine.actions.registry.RUN_KEYS` takes its other arguments):
    #: the engine calls ``apply()`` (never ``check()`` nor in check mode) with this argument set
    #: to each stage's start and end and the final line, and journals what it registered
    channel_message: ClassVar[str] = ""
    #: arguments whose rendered values are credentials whatever the variable they come from is
    #: called (``notify``'s webhook URL: its path is the token): registered with the masker at run
    #: start, before the journal's header records the -e that gave them
    credential_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, args: Any, ctx: ActionContext):
        self.args = args
        self.ctx = ctx

    # -- the contract ------------------------------------------------------------------
    def probe(self) -> Probe | None:
        """Read-only state check. ``None``: this action cannot tell."""
        return None

    def apply(self) -> StepResult:
        raise NotImplementedError

    def undo(self, record: Any) -> StepResult:
        """Reverse a previous ``apply`` from its journaled undo record."""
        raise NotImplementedError(f"{self.name} has no built-in undo")

    def changes_nothing(self) -> bool:
        """This rendered call cannot change anything (a read-only ``sql`` statement)."""
        return not self.mutating

    @classmethod
    def view_changes_nothing(cls, view: Any) -> bool:
        """The call whose rendered arguments are ``view`` (what the journal's digest is made
        of) cannot change anything. Its intent then need not reach the disk before it runs:
        lost in a crash, resume runs it again, which is harmless."""
        return not cls.mutating

    def idempotent_call(self) -> bool:
        """Running this rendered call twice gives the same result as running it once."""
        return self.idempotent or self.changes_nothing()

    def undo_of_found(self, probe: Probe) -> Any:
        """The undo record of a change this run made that ``probe`` found already made, or
        None when nothing says this run made it. Deterministic: from the action's own
        evidence (a manifest of this run, what ``ctx.notes`` journaled before the change)."""
        return None

    def result_of_found(self, probe: Probe) -> dict[str, Any]:
        """The registered result (``StepResult.data``) of a change ``probe`` found already made,
        as ``apply`` would have registered it: a probe that finds the step done says what it
        found, and every field a later step may read must be there. Default: the probe's state
        (an action whose probe state *is* its result); override to rebuild it from the action's
        own evidence (a manifest, a progress table, the notes journaled before the change)."""
        return dict(probe.state)

    def undo_of_partial(self, probe: Probe) -> Any:
        """The undo record of the part of a change this run made when ``probe`` says the step
        is *not* done (a fence is up but its sessions are not all killed): rollback undoes that
        part, resume runs the step again. None (the default): nothing of it is known to be made."""
        return None

    @classmethod
    def facts_set(cls, registered: dict[str, Any]) -> dict[str, Any]:
        """Host variables a result defines besides ``register`` (``set_fact``)."""
        return {}

    def check(self) -> StepResult:
        """Check mode for a mutating action: report what would change, touch nothing."""
        from engine.model import Status

        probe = self.probe()
        if probe is None:
            return StepResult(Status.SKIPPED, msg="check mode: would run (no probe to tell the effect)")
        if probe.done:
            return StepResult(Status.OK, msg="check mode: already in the desired state", data=dict(probe.state))
        return StepResult(Status.CHANGED, msg=f"check mode: would {probe.would}".rstrip(), data=dict(probe.state), diff=probe.would)

    # -- static validation hook ----------------------------------------------------------
    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        """Extra checks beyond the JSON Schema: ``[(json_path_suffix, message)]``."""
        return []

    @classmethod
    def local_names(cls, args: Any) -> set[str]:
        """Variables the action defines for its own templates (``verify``'s ``vars:`` for its
        rules), so validation does not call them undefined."""
        return set()

    @classmethod
    def var_reads(cls, args: Any, base_dir: str, render: Callable[[Any], Any] | None = None
                  ) -> list[tuple[Any, frozenset[str]]] | None:
        """What the step reads from the run's variables, as ``(templated values, names those
        templates get from the action instead)`` pairs: its arguments, and the files they
        name (``verify``'s suites). Validation counts the names they read (an extra var that
        nothing reads is refused). ``render`` renders a value with what is known before the run
        (runbook vars, -e; raises when it needs more). None: a file named by a template that
        cannot be rendered before the run, which could read any name."""
        return [(args, frozenset(cls.local_names(args)))]

    @classmethod
    def file_problems(cls, args: Any, base_dir: str) -> list[Any]:
        """Checks of files the arguments name (``verify``'s suites), relative to the runbook's
        directory: ``(json_path_suffix, message)`` pairs placed in the runbook, or
        :class:`~engine.errors.Problem` s placed in those files."""
        return []


MARKS = "marks"  # run_state key: mark name -> host -> the registered value


def duration_problem(args: Any, *keys: str) -> list[tuple[str, str]]:
    """For :meth:`Action.static_problems`: the first of ``keys`` whose value is not a duration
    (``[(key, message)]``, or ``[]``). A template is left for when it is rendered."""
    for key in keys:
        value = args.get(key) if isinstance(args, dict) else None
        if value is not None and not (isinstance(value, str) and "{{" in value):
            try:
                parse_duration(value)
            except ValueError as exc:
                return [(key, str(exc))]
    return []


def record_marks(run_state: dict[str, Any], cls: type[Action], host: str, registered: dict[str, Any]) -> None:
    """Keep the marks a successful step declares (the executor calls it as it remembers a
    result, and resume as it restores one from the journal)."""
    if not cls.run_marks or registered.get("failed") or registered.get("skipped"):
        return
    for mark, fld in cls.run_marks.items():
        value = registered.get(fld)
        if value not in (None, "", {}):
            run_state.setdefault(MARKS, {}).setdefault(mark, {})[host] = value


def run_mark(ctx: ActionContext, mark: str) -> Any:
    """The latest value of ``mark`` a step of this run registered on this host, or None."""
    return ctx.run_state.get(MARKS, {}).get(mark, {}).get(ctx.host.name)


REGISTRY: dict[str, type[Action]] = {}


def register(cls: type[Action]) -> type[Action]:
    REGISTRY[cls.name] = cls
    return cls
