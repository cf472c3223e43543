"""Which variables a run reads — so that an extra var (``-e``) nothing reads is refused at
validate: ``-e shema=shop2`` must not let the run restore the default ``shop``.

A name is *read* when some template or condition that can run reads it:

* the runbook's step arguments (an ``sql`` text included), ``when``/``until``/``failed_when``/
  ``changed_when``, ``loop``, ``unless``/``creates``, ``undo``, a stage's ``when``, ``confirm``
  and ``targets``, the runbook's ``targets``; an action's conditions (``assert``'s ``that``);
* what an action's own files read (a ``verify`` suite's rules: :meth:`Action.var_reads`);
* the engine itself: connection variables (``-e mysql_password=…`` reaches the connection);
* through ``hostvars[h].name`` / ``hostvars[h]['name']``;
* transitively, the templates of the runbook's ``vars:`` and of the inventory's variables —
  those of a variable that is read, only (``vars: {a: "{{ b }}"}`` reads ``b`` if ``a`` is read).

A read the analysis cannot name — ``hostvars[h][some_expression]``, ``hostvars`` passed around
whole, a suite path given by a template — may be of any name: then no extra var is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.actions.registry import REGISTRY, declaration
from engine.inventory import Inventory
from engine.language.loader import MAGIC_VARS
from engine.language.template_checks import condition_text
from engine.model import Runbook, Step
from engine.templating.render import ENGINE, names_in

#: variables the engine reads from a host's variables (which -e overrides), besides templates
_CONDITION_KEYS = ("when", "until", "failed_when", "changed_when")


def engine_reads() -> frozenset[str]:
    from engine.inventory.checks import ANSIBLE_KNOWN, KNOWN

    return KNOWN | ANSIBLE_KNOWN


class Reads:
    """The names a run reads, and whether some read cannot be named (``anything``)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.anything = ""  # why any name may be read ("" when every read is named)

    def templates(self, values: Iterable[Any], local: frozenset[str] = frozenset()) -> None:
        """Names read by the templates inside these (nested) values, but ``local`` ones (which
        those templates get from elsewhere than the run's variables)."""
        for v in _strings(values):
            self.names |= names_in([v]) - local
            self._hostvars(v)

    def _hostvars(self, source: str) -> None:
        if "hostvars" not in source:
            return
        # hostvars[h].x, hostvars[h]['x'], hostvars.h.x name x; anything else may read any name
        names, anything = ENGINE.hostvars_reads(source)
        self.names |= names
        if anything and not self.anything:
            self.anything = f"a template reads hostvars in a way that may reach any variable: {source[:80]!r}"


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for v in values:
        if isinstance(v, str):
            if "{{" in v or "{%" in v:
                yield v
        elif isinstance(v, dict):
            yield from _strings(v.keys())
            yield from _strings(v.values())
        elif isinstance(v, (list, tuple)):
            yield from _strings(v)


def _step_values(step: Step) -> list[Any]:
    out: list[Any] = [step.loop, step.creates, step.unless, step.undo, step.ignore_errors, step.retries,
                      step.name, step.timeout, step.delay]
    for key in _CONDITION_KEYS:
        val = getattr(step, key, None)
        if val is not None:
            out.append(condition_text(val))
    cls = declaration(step.action) if step.action in REGISTRY else None
    if cls is not None and isinstance(step.args, dict):
        out += [condition_text(step.args[k]) for k in cls.condition_params if k in step.args]
    return out


def step_reads(step: Step, base_dir: str, render: Callable[[Any], Any] | None = None) -> set[str]:
    """The names one step reads directly (its arguments, conditions and files)."""
    reads = Reads()
    reads.templates(_step_values(step))
    cls = declaration(step.action) if step.action in REGISTRY else None
    for values, local in (cls.var_reads(step.args, base_dir, render) if cls is not None else None) or [(step.args, frozenset())]:
        reads.templates([values], local)
    return reads.names


def _renderer(rb: Runbook, extra: dict[str, Any]) -> Callable[[Any], Any]:
    """Render a value with what is known before the run: the runbook's vars and -e (a name
    only a step registers makes it raise)."""
    from engine.templating.render import lazify

    known = dict(lazify(rb.vars), **lazify(extra))
    return lambda value: ENGINE.render(value, known)


def run_reads(rb: Runbook, inv: Inventory, base_dir: str, extra: dict[str, Any] | None = None) -> Reads:
    """Every name the run can read (see the module's docstring)."""
    render = _renderer(rb, extra or {})
    reads = Reads()
    reads.names |= set(MAGIC_VARS) | engine_reads()
    reads.templates([rb.targets])
    reads.templates(list(rb.channels.values()))  # the run's channel (notify:) reads -e notify_url
    for stage in rb.stages:
        reads.templates([stage.targets, stage.confirm] + ([condition_text(stage.when)] if stage.when is not None else []))
        for step in stage.steps:
            reads.templates(_step_values(step))
            cls = declaration(step.action) if step.action in REGISTRY else None
            own = cls.var_reads(step.args, base_dir, render) if cls is not None else [(step.args, frozenset())]
            if own is None:
                reads.anything = reads.anything or f"step {step.key!r} reads a file its arguments name by a template"
            for values, local in own or []:
                reads.templates([values], local)
    # vars of the runbook and of the inventory: their templates are read when they are
    layers: dict[str, list[Any]] = {}
    for name, value in rb.vars.items():
        layers.setdefault(name, []).append(value)
    for host in inv.hosts.values():
        for name, value in host.vars.items():
            if isinstance(name, str):
                layers.setdefault(name, []).append(value)
    done: set[str] = set()
    while True:
        todo = [n for n in reads.names & set(layers) if n not in done]
        if not todo:
            break
        for n in todo:
            done.add(n)
            reads.templates(layers[n])
    return reads


def unused_extra_vars(rb: Runbook, inv: Inventory, extra: dict[str, Any], base_dir: str) -> list[tuple[str, str]]:
    """``(name, did-you-mean or "")`` for each extra var nothing reads, in the order given;
    empty when some read cannot be named."""
    reads = run_reads(rb, inv, base_dir, extra)
    if reads.anything:
        return []
    import difflib

    # the runbook's own names first: a typo of `schema` is not `ssh_host`
    choices = sorted((reads.names | set(rb.vars)) - set(MAGIC_VARS) - engine_reads()) + sorted(engine_reads())
    out = []
    for name in extra:
        if name in reads.names:
            continue
        close = difflib.get_close_matches(name, [c for c in choices if c != name], n=1, cutoff=0.75)
        out.append((name, close[0] if close else ""))
    return out


__all__ = ["Reads", "run_reads", "step_reads", "unused_extra_vars"]
