"""The command line. The only place that turns errors into messages and exit codes:
0 success · 1 the run failed · 2 invalid input (nothing executed) · 130 interrupted or aborted
by the operator (Ctrl-C, SIGTERM, a declined confirmation)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from engine.cli.say import say
from engine.cli.snapshots import snapshots
from engine.errors import InputError, RunbookError, Source
from engine.language.load import load_all, vault_password
from engine.run.ending import RunEnd
from engine.visible import visible, visible_json


# How a run ended -> the exit code of the SPEC: 0 success · 1 the run failed · 2 invalid input,
# nothing executed · 130 interrupted. This module is the only place that decides it.
_EXIT = {RunEnd.SUCCEEDED: 0, RunEnd.FAILED: 1, RunEnd.NEEDS_DECISION: 1, RunEnd.INVALID: 2, RunEnd.INTERRUPTED: 130,
         RunEnd.ABORTED: 130}


def _die(exc: RunbookError) -> NoReturn:
    click.echo(exc.render(), err=True)
    sys.exit(exc.exit_code)


class _Group(click.Group):
    """Maps our errors (and click's usage errors) to exit codes; no traceback for a user error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
            sys.exit(rv or 0)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            if exc.ctx is not None:
                click.echo(f"try: {exc.ctx.command_path} --help", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except RunbookError as exc:
            _die(exc)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:  # a bug of ours: say so, keep the traceback out of the operator's way
            import traceback

            from engine.journal.layout import journal_dir as _jdir
            from engine.secrets import MASKER

            # In the journal dir (the user's state dir by default), masked (a traceback's
            # values may hold a password) and readable by its owner only.
            path = _jdir(None) / "crash.log"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(MASKER.text(traceback.format_exc()))
                where = f" (traceback in {path})"
            except OSError:
                where = ""
                click.echo(MASKER.text(traceback.format_exc()), err=True)
            click.echo(visible(f"internal error: {type(exc).__name__}: {MASKER.text(str(exc))}{where} — please report it",
                               newlines=False), err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runbook-engine", prog_name="runbook")
def main() -> None:
    """runbook: declarative, crash-safe runbooks for MySQL and MariaDB disaster recovery."""


def _load(*args: Any, **kwargs: Any) -> Any:
    """:func:`load_all` with the user's cache of template analyses: a runbook validated before
    has its known templates' syntax and names from it (engine/templating/shared_cache.py)."""
    from engine.templating.render import ENGINE
    from engine.templating.shared_cache import open_shared_cache

    ENGINE.shared = open_shared_cache()
    try:
        return load_all(*args, **kwargs)
    finally:
        if ENGINE.shared is not None:
            ENGINE.shared.save()
        ENGINE.shared = None  # the run renders; it does not add to the cache


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("-i", "--inventory", "inventories", multiple=True, help="inventory file (repeatable)")
@click.option("-e", "--extra-vars", "extra", multiple=True, help="KEY=VALUE, @vars.yml or a JSON mapping")
@click.option("--limit", help="host pattern to restrict the run to")
@click.option("--vault-password-file", "vault_password_file", envvar="ANSIBLE_VAULT_PASSWORD_FILE",
              help="decrypt ansible-vault values and files of the inventory (also $ANSIBLE_VAULT_PASSWORD_FILE)")
@click.option("--allow-unused-vars", "allow_unused_vars", is_flag=True, help="accept an -e variable that nothing reads")
def validate(runbook: str, inventories: tuple[str, ...], extra: tuple[str, ...], limit: str | None, vault_password_file: str | None,
             allow_unused_vars: bool) -> None:
    """Check a runbook (and inventory) without touching any host."""
    from engine.inventory import limit_pattern

    loaded, inv, _ = _load(runbook, inventories, extra, limit, vault_password_file, allow_unused_vars=allow_unused_vars)
    limit = limit_pattern(limit)
    for w in loaded.warnings:
        click.echo("warning: " + w.render(), err=True)
    rb = loaded.runbook
    steps = sum(len(s.steps) for s in rb.stages)
    from engine.language.crosscheck import stage_hosts

    for w in inv.warnings:
        click.echo(visible(f"warning: {w}", newlines=False), err=True)
    say(f"ok: {runbook} is valid — {len(rb.stages)} stages, {steps} steps, {len(inv.hosts)} host(s) in the inventory")
    for name, hosts in stage_hosts(rb, inv, limit):
        shown = "decided at run time (templated targets)" if hosts is None else (", ".join(hosts) if hosts else "no host")
        say(f"  stage {name}: {shown}")


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("-i", "--inventory", "inventories", multiple=True, help="inventory file (repeatable)")
@click.option("-e", "--extra-vars", "extra", multiple=True, help="KEY=VALUE, @vars.yml or a JSON mapping")
@click.option("--check", is_flag=True, help="dry run: read-only steps run, the rest say what they would do")
@click.option("--diff", is_flag=True, help="show what changes")
@click.option("--tags", "tags", multiple=True, help="only steps with these tags (comma separated)")
@click.option("--skip-tags", "skip_tags", multiple=True, help="skip steps with these tags")
@click.option("--limit", help="host pattern to restrict the run to")
@click.option("--start-at", "start_at", help='start at "STAGE" or "STAGE/STEP"')
@click.option("--yes", is_flag=True, help="answer yes to stage confirmations")
@click.option("--forks", default=10, show_default=True, type=click.IntRange(1, 500), help="hosts in parallel")
@click.option("--journal-dir", "journal_dir", help="default: $RUNBOOK_HOME, else $XDG_STATE_HOME/runbook (~/.local/state/runbook)")
@click.option("--report", "report", help="write a report: .json .xml .html .md by suffix")
@click.option("-v", "--verbose", count=True, help="-v shows output and rows; -vv everything registered")
@click.option("--vault-password-file", "vault_password_file", envvar="ANSIBLE_VAULT_PASSWORD_FILE",
              help="decrypt ansible-vault values and files of the inventory (also $ANSIBLE_VAULT_PASSWORD_FILE)")
@click.option("--allow-unused-vars", "allow_unused_vars", is_flag=True, help="accept an -e variable that nothing reads")
def play(runbook: str, inventories: tuple[str, ...], extra: tuple[str, ...], check: bool, diff: bool,
         tags: tuple[str, ...], skip_tags: tuple[str, ...], limit: str | None, start_at: str | None, yes: bool,
         forks: int, journal_dir: str | None, report: str | None, verbose: int, vault_password_file: str | None,
         allow_unused_vars: bool) -> None:
    """Run a runbook."""
    from engine.cli.operator import TerminalOperator
    from engine.run.runner import new_run

    if report and Path(report).suffix.lower() not in (".json", ".xml", ".html", ".md"):
        raise InputError(f"--report {report}: unknown suffix", hint="use .json, .xml (JUnit), .html or .md")
    loaded, inv, extra_vars = _load(runbook, inventories, extra, limit, vault_password_file, allow_unused_vars=allow_unused_vars)
    from engine.inventory import limit_pattern

    limit = limit_pattern(limit)  # @FILE read once: the journal keeps the hosts it named
    end = new_run(loaded, inv, extra_vars, dict(
        runbook=runbook, inventories=list(inventories), extra=list(extra), check=check, diff=diff, tags=_split(tags),
        skip_tags=_split(skip_tags), limit=limit, start_at=start_at, yes=yes, forks=forks, journal_dir=journal_dir,
        report=report, verbose=verbose, vault_password_file=os.path.abspath(vault_password_file) if vault_password_file else None),
        operator=TerminalOperator())
    sys.exit(_EXIT[end])


@main.command()
@click.option("-i", "--inventory", "inventories", multiple=True, help="inventory file or directory (repeatable)")
@click.option("--list", "as_list", is_flag=True, help="every group and host with its variables, as JSON (like ansible-inventory)")
@click.option("--graph", "graph", is_flag=False, flag_value="all", default=None, help="the group tree (from GROUP, default all)")
@click.option("--host", "host", help="the variables of one host, as JSON")
@click.option("--hosts", "pattern", help="the hosts a pattern selects, in order, one per line")
@click.option("--playbook-dir", "playbook_dir", type=click.Path(file_okay=False), help="also read group_vars/ and host_vars/ here (the runbook's directory)")
@click.option("--vault-password-file", "vault_password_file", envvar="ANSIBLE_VAULT_PASSWORD_FILE",
              help="decrypt ansible-vault values and files of the inventory (also $ANSIBLE_VAULT_PASSWORD_FILE)")
def inventory(inventories: tuple[str, ...], as_list: bool, graph: str | None, host: str | None, pattern: str | None,
              playbook_dir: str | None, vault_password_file: str | None) -> None:
    """Show the inventory as runbook (and Ansible) reads it."""
    from engine.inventory import load_inventories, match_pattern
    from engine.inventory import listing

    chosen = [n for n, v in (("--list", as_list), ("--graph", graph), ("--host", host), ("--hosts", pattern)) if v]
    if len(chosen) != 1:
        raise InputError("say what to show: one of --list, --graph, --host NAME, --hosts PATTERN" if not chosen
                         else f"{' and '.join(chosen)} cannot be used together", hint="runbook inventory -i INVENTORY --list")
    inv = load_inventories(list(inventories), playbook_dir=playbook_dir, vault_password=vault_password(vault_password_file))
    for w in inv.warnings:
        click.echo(f"warning: {w}", err=True)
    if as_list:
        click.echo(listing.dump(listing.as_list(inv)))
    elif graph:
        click.echo(listing.graph(inv, graph))
    elif host:
        if host not in inv.hosts:
            from engine.language.schema_messages import did_you_mean

            raise InputError(f"--host {host}: no such host in the inventory", hint=did_you_mean(host, list(inv.hosts)) or "runbook inventory --hosts all")
        click.echo(listing.dump(listing.host_vars(inv, host)))
    else:
        for name in match_pattern(pattern, inv, source=Source("--hosts")):
            click.echo(name)


@main.command()
@click.argument("run_id")
@click.option("--yes", is_flag=True, help="answer yes to stage confirmations (never to in-doubt steps)")
@click.option("--force", is_flag=True, help="resume even though the runbook or inventory changed")
@click.option("--decide", multiple=True, help="answer for an in-doubt step: 'stage/step@host=rerun|done|abort'")
@click.option("--journal-dir", "journal_dir")
@click.option("-v", "--verbose", count=True)
def resume(run_id: str, yes: bool, force: bool, decide: tuple[str, ...], journal_dir: str | None, verbose: int) -> None:
    """Continue an interrupted or failed run where it stopped."""
    from engine.cli.operator import TerminalOperator
    from engine.run.runner import resume_run

    decisions: dict[str, str] = {}
    for d in decide:
        key, sep, value = d.rpartition("=")
        if not sep or value not in ("rerun", "done", "abort"):
            raise InputError(f"--decide {d!r}: expected 'stage/step@host=rerun|done|abort'")
        decisions[key] = value
    sys.exit(_EXIT[resume_run(run_id, yes=yes, force=force, decisions=decisions, journal_dir=journal_dir, verbose=verbose,
                              operator=TerminalOperator())])


@main.command()
@click.argument("run_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--force", is_flag=True, help="roll back even though the runbook or inventory changed")
@click.option("--decide", multiple=True,
              help="answer for an in-doubt step or undo: 'stage/step@host=done|rerun|skip|abort'")
@click.option("--journal-dir", "journal_dir")
def rollback(run_id: str, yes: bool, force: bool, decide: tuple[str, ...], journal_dir: str | None) -> None:
    """Undo a run's reversible steps, newest first."""
    from engine.cli.operator import TerminalOperator
    from engine.run.runner import rollback_run

    decisions: dict[str, str] = {}
    for d in decide:
        key, sep, value = d.rpartition("=")
        if not sep or value not in ("rerun", "done", "skip", "abort"):
            raise InputError(f"--decide {d!r}: expected 'stage/step@host=done|rerun|skip|abort'")
        decisions[key] = value
    sys.exit(_EXIT[rollback_run(run_id, yes=yes, force=force, journal_dir=journal_dir, decisions=decisions,
                                operator=TerminalOperator())])


@main.command()
@click.option("--journal-dir", "journal_dir")
def runs(journal_dir: str | None) -> None:
    """List the runs in the journal dir."""
    from engine.run.runner import list_runs_text

    say(list_runs_text(journal_dir))


@main.command()
@click.argument("run_id")
@click.option("--journal-dir", "journal_dir")
def show(run_id: str, journal_dir: str | None) -> None:
    """Stages, steps, hosts, status and timings of one run."""
    from engine.run.runner import show_text

    say(show_text(run_id, journal_dir))


@main.command()
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "junit"]), required=True)
@click.option("-o", "--output", help="file to write (default: standard output)")
@click.option("--journal-dir", "journal_dir")
def report(run_id: str, fmt: str, output: str | None, journal_dir: str | None) -> None:
    """Render a run's report from its journal."""
    from engine.report import render_report, write_report
    from engine.run.runner import load_state

    text = render_report(load_state(run_id, journal_dir), fmt)
    if output:
        try:
            write_report(Path(output), text)
        except OSError as exc:
            raise InputError(f"cannot write the report to {output}: {exc.strerror}", hint="choose a writable path with -o") from None
        click.echo(f"wrote {output}")
    else:
        click.echo(visible_json(text) if fmt == "json" else visible(text))


main.add_command(snapshots)  # runbook snapshots list|drop (engine/cli/snapshots.py)


@main.command()
@click.argument("what", type=click.Choice(["up", "down", "status", "crash", "load"]))
@click.argument("dataset", required=False, type=click.Choice(["shop"]))
@click.option("--replicas", type=click.IntRange(0, 8), default=None,
              help="up: replicas of db1 (db2, db3...) to build with a new lab (default 0)")
@click.option("--journal-dir", "journal_dir", help="the lab lives in <journal dir>/lab")
def lab(what: str, dataset: str | None, replicas: int | None, journal_dir: str | None) -> None:
    """A disposable local MariaDB (+ replicas) and sshd for drills (up, down, status, crash, load shop).

    up [--replicas N] builds db1 (primary) and db2.. (GTID replicas) and prints the inventory's
    path; on an existing lab it restarts what is down on its own datadir (InnoDB crash recovery
    runs). crash kills db1 with -9 under a write load with a transaction open. load shop puts the
    drill's shop on db1 and a mariadb-dump backup of it on the host, and prints its path. status
    shows the topology and lag, and exits 1 when a server is down."""
    from engine.cli import lab as lab_mod
    from engine.journal import journal_dir as jdir

    if (what == "load") != (dataset is not None):
        raise InputError(f"runbook lab {what} {dataset or ''}".rstrip() + ": only `load` takes a data set",
                         hint="runbook lab load shop")
    if replicas is not None and what != "up":
        raise InputError(f"--replicas is an option of `runbook lab up`, not of `lab {what}`")
    the_lab = lab_mod.Lab(lab_mod.lab_dir(jdir(journal_dir)))
    if what == "crash":
        from engine.cli.lab_crash import crash

        say(crash(the_lab))
        return
    if what == "load":
        from engine.cli.lab_load import load_shop

        say(load_shop(the_lab))
        return
    if what == "up":
        say(lab_mod.up(the_lab, replicas))
        return
    fn = {"down": lab_mod.down, "status": lab_mod.status}[what]
    say(fn(the_lab))
    if what == "status" and not lab_mod.is_up(the_lab):
        sys.exit(1)

