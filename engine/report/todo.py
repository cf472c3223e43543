"""What the operator must still do, and what operators decided: the end of the incident record.

Read from the journal alone, by what steps registered (never by an action's name):

* a host whose last recorded ``state.read_only`` is true (a fence not reopened or undone):
  writes are still fenced;
* a registered ``snapshot_schema`` whose step was not undone: the snapshot is kept. Whether it
  may be dropped depends on what else the run registered on that host: a restore (it registered
  the dump's coordinates, ``binlog_start``) put the backup's rows back, so the writes made since
  the backup that it overwrote or emptied live only in the snapshot — unless a later binlog
  replay of the run (it registered ``stopped_at``, the ``start`` it replayed from and the ``end``
  it reached) started at or before those coordinates and reached the position at which the run
  fenced the host (a fence registers its ``binlog``): a replay that stopped before the fence
  (``stop_before``) left the writes after that point in the snapshot alone. Only then is the drop command offered;
  otherwise the snapshot must be kept and merged;
* steps in doubt, a failed or interrupted run: resume or roll back;
* stages of the runbook that never started (skipped by ``--tags``/``--skip-tags``/``when``, or
  the run stopped before them), when the runbook file is still the one the run used.

Confirmations (``operator_confirm``) and decisions on in-doubt steps (``operator_decision``)
are journal events; :func:`decisions` lists them with who and when.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.report.text import masked


@dataclass(frozen=True)
class Decision:
    """A confirmation typed (or given by ``--yes``) or a decision on an in-doubt step."""

    ts: str | None
    who: str
    kind: str  # confirmation | decision
    what: str
    answer: str


def decisions(events: list[dict[str, Any]] | tuple[dict[str, Any], ...], operator: str | None) -> list[Decision]:
    out: list[Decision] = []
    who = operator or "?"
    for e in events:
        kind = e.get("kind")
        if kind == "operator_confirm":
            by = str(e.get("by") or "")
            out.append(Decision(e.get("ts"), f"{who} ({by})" if by else who, "confirmation",
                                f"stage {e.get('stage')}: {e.get('text') or ''}".strip(),
                                "confirmed" if e.get("confirmed") else "refused: the run stopped"))
        elif kind == "operator_decision":
            phase = " (rollback)" if e.get("phase") == "undo" else ""
            by = str(e.get("by") or "")
            outcome = str(e.get("decision")) if e.get("applied", True) else f"{e.get('decision')}: not applied ({e.get('why')})"
            out.append(Decision(e.get("ts"), f"{who} ({by})" if by else who, "decision", f"in-doubt step {e.get('step')} on {e.get('host')}{phase}",
                                outcome))
    return out


def _stages_of_runbook(header: dict[str, Any]) -> list[str] | None:
    """The stage names of the run's runbook, when the file still has the digest the journal recorded."""
    path = header.get("runbook")
    files = header.get("files") or {}
    if not isinstance(path, str) or not isinstance(files, dict) or path not in files:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != files[path]:
        return None
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        return None
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, list):
        return None
    return [str(s["name"]) for s in stages if isinstance(s, dict) and isinstance(s.get("name"), str)]


def operator_todo(records: list[dict[str, Any]], header: dict[str, Any], run_id: str, run_status: str | None,
                  started_stages: list[str], in_doubt: list[str], failed: list[str]) -> list[str]:
    """The list under "What the operator must still do" (empty: nothing left)."""
    fence: dict[str, str | None] = {}  # host -> step that fenced it (None: open)
    snapshots: dict[tuple[str, str], str] = {}  # (step, host) -> snapshot schema
    restores: dict[tuple[str, str], _Restore] = {}  # (step, host) -> a restore not replayed yet
    fenced_at: dict[str, dict[str, Any]] = {}  # host -> where the run's latest fence took effect
    snap_tables: dict[str, frozenset[str]] = {}  # snapshot schema -> the tables it copied
    for rec in records:
        if rec.get("type") != "outcome" or rec.get("status") not in ("ok", "changed"):
            continue
        step, host, phase = str(rec.get("step")), str(rec.get("host")), rec.get("phase", "do")
        raw = rec.get("registered")
        reg: dict[str, Any] = raw if isinstance(raw, dict) else {}
        raw_state = reg.get("state")
        state: dict[str, Any] | None = raw_state if isinstance(raw_state, dict) else None
        if phase == "undo":
            if fence.get(host) == step:
                fence[host] = None  # the fence was undone
            snapshots.pop((step, host), None)
            restores.pop((step, host), None)
            continue
        if state is not None and isinstance(state.get("read_only"), bool):
            fence[host] = step if state["read_only"] else None
            if state["read_only"] and isinstance(reg.get("binlog"), dict):
                fenced_at[host] = reg["binlog"]
        if isinstance(reg.get("snapshot_schema"), str):
            snapshots[(step, host)] = reg["snapshot_schema"]
            snap_tables[reg["snapshot_schema"]] = _table_names(reg)
        if "binlog_start" in reg:
            left = reg.get("only_in_snapshot")
            restores[(step, host)] = _Restore(step, host, reg.get("binlog_start"), _rows_left(reg), _table_names(reg),
                                              left.get("snapshot_schema") if isinstance(left, dict) else None)
        elif "stopped_at" in reg and isinstance(reg.get("start"), dict):
            for key, r in list(restores.items()):
                if r.host == host and _at_or_before(reg["start"], r.start) and _at_or_before(fenced_at.get(host), reg.get("end")):
                    del restores[key]  # its writes since the backup, up to the fence, were replayed after it
    todo: list[str] = []
    for host, fenced_by in sorted(fence.items()):
        if fenced_by:
            todo.append(f"Writes are still fenced on {host} (read_only=ON since “{fenced_by}”): reopen them once the data is "
                        f"verified (a resume_writes step, or `runbook rollback {run_id}` to undo the whole run).")
    for d in in_doubt:
        todo.append(f"Step {d} is in doubt (the run stopped while it ran): `runbook resume {run_id}` probes it and asks you.")
    if run_status not in ("succeeded", "rolled back", None):
        where = f" at {failed[0]}" if failed else ""
        todo.append(f"The run is {run_status}{where}: read Problems, then `runbook resume {run_id}` to go on or "
                    f"`runbook rollback {run_id}` to undo what it changed.")
    names = _stages_of_runbook(header)
    if names is not None:
        missing = [n for n in names if n not in started_stages]
        if missing:
            runbook = header.get("runbook")
            todo.append(f"Stage(s) not run: {', '.join(missing)}. Run them later with `runbook play {runbook} --tags …` "
                        "(their tags) or `--start-at \"STAGE/STEP\"`, or record why they are not needed.")
    for (step, host), schema in sorted(snapshots.items()):
        lost = [r for r in restores.values() if r.host == host and r.overwrote(schema, snap_tables.get(schema, frozenset()))]
        if lost:
            todo.append(f"Snapshot {schema} on {host} (from “{step}”) holds the only copy of the writes made since the backup "
                        f"that {_restores_text(lost)} overwrote or emptied: no binlog replay of this run brought them back. "
                        "Keep it and merge those rows back (or replay the binlogs from the backup's coordinates) before "
                        "dropping it; `runbook snapshots list` shows it.")
        else:
            todo.append(f"Snapshot {schema} on {host} (from “{step}”) is kept: it holds the tables as they were before "
                        f"the restore. Drop it once the data is confirmed: `runbook snapshots drop {run_id}`.")
    return masked(todo) if todo else todo


@dataclass(frozen=True)
class _Restore:
    """A restore of the run whose writes since the backup no replay brought back (yet)."""

    step: str
    host: str
    start: Any  # the dump's coordinates {file, pos, gtid}, None when the dump has none
    rows_left: int | None  # rows it counted as left only in the snapshot, when it counted
    tables: frozenset[str]  # the tables it restored
    snapshot: str | None  # the snapshot it compared itself with (only_in_snapshot), if any

    def overwrote(self, schema: str, copied: frozenset[str]) -> bool:
        """Its writes are in snapshot ``schema`` (which copied ``copied``): the one it compared
        itself with, else one that copied a table it restored (unknown tables: assume so)."""
        if self.snapshot is not None:
            return self.snapshot == schema
        return not self.tables or not copied or bool(self.tables & copied)


def _table_names(reg: dict[str, Any]) -> frozenset[str]:
    tables = reg.get("tables")
    return frozenset(str(t) for t in tables) if isinstance(tables, (dict, list)) else frozenset()


def _rows_left(reg: dict[str, Any]) -> int | None:
    left = reg.get("only_in_snapshot")
    rows = left.get("rows") if isinstance(left, dict) else None
    return rows if isinstance(rows, int) and not isinstance(rows, bool) else None


def _restores_text(restores: list[_Restore]) -> str:
    parts = []
    for r in restores:
        at = f"{r.start.get('file')}:{r.start.get('pos')}" if isinstance(r.start, dict) and r.start.get("file") else \
            "no coordinates in the dump: the binlogs cannot be replayed from it"
        rows = f", {r.rows_left} row(s) counted" if r.rows_left else ""
        parts.append(f"“{r.step}” (backup at {at}{rows})")
    return " and ".join(parts)


def _at_or_before(first: Any, then: Any) -> bool:
    """Binlog position ``first`` is at or before ``then`` (a replay's start and the backup's
    coordinates; the fence and the replay's end). Unknown either way: False (a dump without
    coordinates, a run without a fence: nothing says the writes were covered)."""
    if not (isinstance(first, dict) and isinstance(then, dict)):
        return False
    if first.get("gtid") and first.get("gtid") == then.get("gtid"):
        return True
    f1, f2, p1, p2 = first.get("file"), then.get("file"), first.get("pos"), then.get("pos")
    if not (isinstance(f1, str) and isinstance(f2, str) and isinstance(p1, int) and isinstance(p2, int)):
        return False
    return (f1, p1) <= (f2, p2)  # binlog files of one server sort by name (mysql-bin.000012)
