"""``runbook snapshots list [RUN_ID] | drop RUN_ID``: the rollback snapshots on a server.

The snapshot lives on the server (``_rb_snap_<run id>`` and its manifest), so these commands
connect to it. Which server: ``--host`` of ``-i INVENTORY``; without ``-i``, a run id is enough —
its journal names the inventory and the hosts it ran on (as ``resume`` and ``rollback`` need
nothing but the run id)::

    runbook snapshots list                      # -i needed: every snapshot on the host
    runbook snapshots list 20261122-031502-7f3a # the run's snapshot, on the run's hosts
    runbook snapshots drop 20261122-031502-7f3a --yes
"""

from __future__ import annotations

import sys
from typing import Any

import click

from engine.errors import InputError


def _hosts(inventories: tuple[str, ...], host: str | None, run_id: str | None, journal_dir: str | None) -> list[tuple[str, Any]]:
    """``(name, Connections)`` of the hosts to look at."""
    from engine.inventory import load_inventories
    from engine.run.context import Connections

    run_hosts: list[str] = []
    if run_id is not None:
        from engine.run.catalog import load_state

        try:
            header = load_state(run_id, journal_dir).header
        except InputError:
            if not inventories:
                raise
            header = {}
        run_hosts = [str(h) for h in header.get("hosts") or []]
        if not inventories:
            inventories = tuple(str(p) for p in header.get("inventories") or {})
            if not inventories:
                raise InputError(f"run {run_id} ran without an inventory (on this machine): give -i INVENTORY")
    if not inventories:
        raise InputError("say which server: -i INVENTORY [--host H], or a RUN_ID (its journal names the inventory and hosts)",
                         hint="runbook snapshots list RUN_ID")
    inv = load_inventories(list(inventories))
    names = list(inv.hosts)
    if host is not None:
        chosen = [host]
    elif run_hosts and all(h in inv.hosts for h in run_hosts):
        chosen = run_hosts
    elif len(names) == 1:
        chosen = names
    else:
        raise InputError(f"the inventory has {len(names)} hosts: say which with --host", hint=", ".join(names[:10]))
    for name in chosen:
        if name not in inv.hosts:
            raise InputError(f"no host {name!r} in the inventory", hint=", ".join(names[:10]))
    return [(name, Connections(inv.hosts[name])) for name in chosen]


@click.group()
def snapshots() -> None:
    """Rollback snapshots on a server: list them (all, or a run's), drop a run's."""


@snapshots.command("list")
@click.argument("run_id", required=False)
@click.option("-i", "--inventory", "inventories", multiple=True, help="inventory file (default: the run's, from its journal)")
@click.option("--host", help="inventory host (default: the run's hosts, or the only one)")
@click.option("--journal-dir", "journal_dir", help="where the run's journal is (default: $RUNBOOK_HOME, else the state dir)")
def snapshots_list(run_id: str | None, inventories: tuple[str, ...], host: str | None, journal_dir: str | None) -> None:
    """List the snapshots on a host; with RUN_ID, that run's, on the hosts it ran on."""
    from engine.cli.say import say
    from engine.language.sizes import format_size
    from engine.mysql.snapshots import list_snapshots

    targets = _hosts(inventories, host, run_id, journal_dir)
    found = 0
    for name, conns in targets:
        try:
            snaps = [s for s in list_snapshots(conns.sql()) if run_id is None or s.run_id == run_id]
        finally:
            conns.close()
        where = f" on {name}" if len(targets) > 1 or run_id else ""
        if not snaps:
            say(f"no snapshot{' of run ' + run_id if run_id else 's'}{where}")
            continue
        for snap in snaps:
            found += 1
            say(f"{snap.run_id}  {snap.schema}  host {snap.host} ({snap.hostname})  taken {snap.created_at}  {format_size(snap.bytes or 0)}")
            for t in snap.tables:
                kept = f"; displaced live table kept as {t.displaced_table}" if t.displaced_table else ""
                say(f"    {t.source_schema}.{t.source_table}: {t.rows} rows, checksum {t.checksum}, {t.status}{kept}")
    if run_id and not found:
        sys.exit(1)


@snapshots.command("drop")
@click.argument("run_id")
@click.option("-i", "--inventory", "inventories", multiple=True, help="inventory file (default: the run's, from its journal)")
@click.option("--host", help="inventory host (default: the run's hosts, or the only one)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--journal-dir", "journal_dir", help="where the run's journal is (default: $RUNBOOK_HOME, else the state dir)")
def snapshots_drop(run_id: str, inventories: tuple[str, ...], host: str | None, yes: bool, journal_dir: str | None) -> None:
    """Drop the snapshot a run took (its rollback point is gone afterwards)."""
    from engine.cli.operator import TerminalOperator
    from engine.errors import ActionError
    from engine.mysql.snapshots import drop_snapshot

    if not yes:
        operator = TerminalOperator()
        if not operator.interactive:
            raise InputError("dropping a snapshot asks for confirmation and there is no terminal", hint="pass --yes")
        if not operator.confirm(f"drop the snapshot of run {run_id}", run_id, lambda: False):
            click.echo("not confirmed: aborted by the operator, nothing dropped")
            sys.exit(130)
    targets = _hosts(inventories, host, run_id, journal_dir)
    dropped = 0
    for name, conns in targets:
        try:
            result = drop_snapshot(conns.sql(), run_id)
        except ActionError as exc:
            if len(targets) == 1 or not exc.message.startswith("no snapshot"):
                raise
            click.echo(f"{name}: no snapshot of run {run_id}")
            continue
        finally:
            conns.close()
        dropped += 1
        where = f" on {name}" if len(targets) > 1 else ""
        click.echo(f"dropped {result.schema}{where}: the snapshot of run {result.run_id} ({len(result.tables)} table(s)) is gone")
    if not dropped:
        raise ActionError(f"no snapshot of run {run_id} on {', '.join(n for n, _ in targets)}")
