"""What the journal holds that an incident record must show, besides steps and checks: the command
lines the run was driven with, the sessions the fence killed, and the rows written after the
backup that now live only in the snapshot.

Read from the header, the events and what steps registered — never by an action's name: a
step that registered ``killed``/``sessions_killed`` killed sessions; one that registered
``only_in_snapshot`` left rows in the snapshot (the restore counts them on the server right
after its load, see :mod:`engine.actions.restore.snapshot_delta`).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.report.text import as_int, masked

if TYPE_CHECKING:
    from engine.journal import JournalState


@dataclass(frozen=True)
class KilledSession:
    """A client session a step killed (the fence): ``who`` is user@host."""

    stage: str
    step: str
    host: str
    who: str
    id: int | None


@dataclass(frozen=True)
class LeftInSnapshot:
    """Rows of one table whose version lives only in the snapshot after a restore."""

    stage: str
    step: str
    host: str
    table: str
    snapshot_schema: str
    snapshot_rows: int | None
    keys_not_restored: int | None
    versions_replaced: int | None
    rows: int | None
    #: a snapshot undo ran after the restore: the tables were swapped back, these rows are live again
    swapped_back: bool = False


def _q(parts: list[str]) -> str:
    return " ".join(shlex.quote(p) for p in parts)


def command_lines(state: JournalState) -> list[str]:
    """The commands of the run, in order: the play as started (paths as given, -e values with
    secrets masked), then each resume (with its --decide answers) and rollback."""
    h = state.header
    opts: dict[str, Any] = h.get("options") or {}
    cwd = str(h.get("cwd") or "")

    def rel(p: Any) -> str:
        p = str(p)
        if not cwd:
            return p
        r = os.path.relpath(p, cwd)
        return p if r.startswith("..") else r

    parts = ["runbook", "play", rel(h.get("runbook"))]
    for inv in h.get("inventories") or {}:
        parts += ["-i", rel(inv)]
    for e in h.get("extra_vars") or []:
        parts += ["-e", str(e)]
    if opts.get("limit"):
        parts += ["--limit", str(opts["limit"])]
    for flag, key in (("--tags", "tags"), ("--skip-tags", "skip_tags")):
        if opts.get(key):
            parts += [flag, ",".join(map(str, opts[key]))]
    if opts.get("start_at"):
        parts += ["--start-at", str(opts["start_at"])]
    for flag, key in (("--check", "check"), ("--diff", "diff"), ("--yes", "yes"), ("--allow-unused-vars", "allow_unused_vars")):
        if opts.get(key):
            parts.append(flag)
    out = [_q(parts)]
    for e in state.events:
        if e.get("kind") == "resume_start":
            more = ["runbook", "resume", state.run_id]
            for key, value in (e.get("decisions") or {}).items():
                more += ["--decide", f"{key}={value}"]
            if e.get("force"):
                more.append("--force")
            out.append(_q(more))
        elif e.get("kind") == "rollback_start":
            out.append(_q(["runbook", "rollback", state.run_id]))
    return [masked(line) for line in out]


def _who(session: dict[str, Any]) -> str:
    """``user@host`` of a registered session (``{user, host: "10.0.0.7:51234"}``), port dropped."""
    if session.get("who"):
        return str(session["who"])
    host = str(session.get("host") or "")
    head, sep, tail = host.rpartition(":")
    return f"{session.get('user') or '?'}@{head if sep and tail.isdigit() else host}"


def killed_sessions(rows: Any) -> list[KilledSession]:
    """Every session a step registered as killed (``sessions_killed`` with ids, else ``killed``)."""
    out: list[KilledSession] = []
    seen: set[tuple[str, str, int | None]] = set()
    for row in rows:
        reg = row.registered or {}
        if row.phase != "do":
            continue
        found: list[tuple[str, int | None]] = []
        if isinstance(reg.get("sessions_killed"), list) and reg["sessions_killed"]:
            found = [(_who(s), as_int(s.get("id"))) for s in reg["sessions_killed"] if isinstance(s, dict)]
        elif isinstance(reg.get("killed"), list):
            found = [(str(w), None) for w in reg["killed"] if isinstance(w, (str, int))]
        for who, sid in found:
            key = (row.host, who, sid)
            if key not in seen:
                seen.add(key)
                out.append(KilledSession(row.stage, row.step, row.host, masked(who), sid))
    return out


def left_in_snapshot(rows: Any, state: JournalState) -> tuple[list[LeftInSnapshot], str]:
    """Per table, the rows a restore left only in the snapshot, and how they were counted."""
    out: list[LeftInSnapshot] = []
    how = ""
    undos = [s.outcome_seq or 0 for s in state.steps.values()
             if s.phase == "undo" and s.outcome_status in ("ok", "changed") and s.outcome_seq is not None]
    for row in rows:
        reg = row.registered or {}
        left = reg.get("only_in_snapshot")
        if row.phase != "do" or not isinstance(left, dict) or not isinstance(left.get("tables"), dict):
            continue
        st = state.step(f"{row.stage}/{row.step}", row.host)
        after = st.outcome_seq if st is not None and st.outcome_seq is not None else None
        swapped = after is not None and any(u > after for u in undos)
        how = str(left.get("how") or how)
        for table, t in left["tables"].items():
            if isinstance(t, dict):
                out.append(LeftInSnapshot(row.stage, row.step, row.host, str(table), str(left.get("snapshot_schema") or ""),
                                          as_int(t.get("snapshot_rows")), as_int(t.get("keys_not_restored")),
                                          as_int(t.get("versions_replaced")), as_int(t.get("rows")), swapped))
    return out, how
