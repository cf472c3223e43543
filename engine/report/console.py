"""What the operator reads: one line per step and host, stage headers with budgets, a recap.

On a terminal the lines are coloured with rich (unless ``NO_COLOR`` is set) and long work gets
a live progress bar; otherwise plain lines, progress every 10 %. Secrets are masked by value
on every line.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine.language.durations import format_duration
from engine.model import Status, StepResult
from engine.secrets import MASKER
from engine.visible import visible

_STYLE = {
    Status.OK: "green",
    Status.CHANGED: "yellow",
    Status.SKIPPED: "cyan",
    Status.FAILED: "bold red",
    Status.UNREACHABLE: "bold magenta",
}


@dataclass
class HostTally:
    ok: int = 0
    changed: int = 0
    skipped: int = 0
    failed: int = 0
    unreachable: int = 0
    ignored: int = 0


@dataclass
class StageTiming:
    name: str
    budget: float | None
    started: float
    duration: float = 0.0
    status: str = "running"
    exceeded: bool = False


@dataclass
class Recap:
    hosts: dict[str, HostTally] = field(default_factory=dict)
    stages: list[StageTiming] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said again in the recap (e.g. --tags matched nothing)

    def tally(self, host: str) -> HostTally:
        return self.hosts.setdefault(host, HostTally())


#: SGR codes of the styles the console uses. Rendering a line with rich costs ~60 µs (every
#: step's line, on the main thread between two steps); the same bytes written directly, ~6 µs.
_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36"}


def _styled(text: str, style: str) -> str | None:
    """``text`` in ``style`` exactly as rich prints it (each line wrapped in its codes), or None
    when rich must do it: a style or a character (a tab, which rich expands) this does not know."""
    words = style.split()
    if "\t" in text or not words or any(w not in _SGR for w in words):
        return None
    on = "\x1b[" + ";".join(_SGR[w] for w in words) + "m"
    return "\n".join(on + part + "\x1b[0m" if part else "" for part in text.split("\n")) + "\n"


class Console:
    """Prints the run. Thread-safe: hosts report from worker threads."""

    def __init__(self, out: TextIO | None = None, *, verbose: int = 0, color: bool | None = None, diff: bool = False):
        self.out = out or sys.stdout
        self.verbose = verbose
        self.diff = diff
        tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.tty = bool(tty)
        self.color = (tty and "NO_COLOR" not in os.environ) if color is None else color
        self._lock = threading.Lock()
        self._held: list[str] | None = None  # lines of a batch() not written yet
        self._rich: Any = None
        if self.color:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(file=self.out, highlight=False, soft_wrap=True)
        self._progress_last: dict[tuple[str, str], float] = {}
        self._progress_time: dict[tuple[str, str], float] = {}
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        self.recap = Recap()

    # -- low level -------------------------------------------------------------------------
    def line(self, text: str, style: str | None = None) -> None:
        # Masked, then escape sequences made visible: a step name or another host's output
        # must not drive the operator's terminal (NO_COLOR or not).
        text = visible(MASKER.text(text))
        with self._lock:
            if self._rich is not None and style:
                fast = _styled(text, style) if self._rich.color_system else None
                if fast is not None:
                    self._write(fast)
                else:
                    from rich.text import Text

                    self._release()  # what was held comes first
                    self._rich.print(Text(text, style=style))
            else:
                self._write(text + "\n")

    def _write(self, text: str) -> None:
        """Under the lock: out now, or held until the batch ends."""
        if self._held is not None:
            self._held.append(text)
        else:
            self.out.write(text)
            self.out.flush()

    def _release(self) -> None:
        """Under the lock: write what a batch holds, in one write."""
        if self._held:
            self.out.write("".join(self._held))
            self.out.flush()
            self._held.clear()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The lines printed inside go out together when it ends: one write and flush for a
        step's results on every host, not one per host (at 100 hosts, 100 writes of the main
        thread between two steps, each handing the interpreter lock to a worker and waiting
        to get it back). The play prints a step's lines once it ended on every host anyway."""
        with self._lock:
            outer = self._held is not None
            if not outer:
                self._held = []
        try:
            yield
        finally:
            if not outer:
                with self._lock:
                    self._release()
                    self._held = None

    # -- events ----------------------------------------------------------------------------
    def run_start(self, run_id: str, runbook_name: str, path: str, hosts: list[str], check: bool, resumed: bool = False,
                  resume_cmd: str | None = None) -> None:
        mode = " [CHECK MODE: no changes]" if check else ""
        verb = "RESUME" if resumed else "RUN"
        self.line(f"{verb} {run_id} · {runbook_name} · {path} · {len(hosts)} host{'s' if len(hosts) != 1 else ''}: {', '.join(hosts[:8])}{mode}", "bold")
        if resume_cmd:
            # Printed first, so that it is on the screen even if this process is killed.
            self.line(f"if this run stops, continue it with: {resume_cmd}", "dim")

    def stage_start(self, name: str, budget: float | None, hosts: list[str]) -> None:
        b = f" · budget {format_duration(budget)}" if budget else ""
        title = f"STAGE [{name}]{b} · {len(hosts)} host{'s' if len(hosts) != 1 else ''} "
        self.line("\n" + title + "─" * max(4, 72 - len(title)), "bold blue")
        self.recap.stages.append(StageTiming(name, budget, time.monotonic()))

    def stage_skipped(self, name: str, why: str) -> None:
        self.line(f"\nSTAGE [{name}] skipped: {why}", "cyan")

    def stage_end(self, name: str, status: str) -> None:
        for st in reversed(self.recap.stages):
            if st.name == name and st.status == "running":
                st.duration = time.monotonic() - st.started
                st.status = status
                if st.budget:
                    pct = st.duration / st.budget * 100
                    over = " — OVER BUDGET" if st.duration > st.budget else ""
                    self.line(f"stage [{name}] {status} in {format_duration(st.duration)} ({pct:.0f}% of its {format_duration(st.budget)} budget){over}",
                              "bold red" if over else "dim")
                else:
                    self.line(f"stage [{name}] {status} in {format_duration(st.duration)}", "dim")
                break

    def budget_exceeded(self, scope: str, name: str, budget: float) -> None:
        msg = f"WARNING: {scope} [{name}] exceeded its budget of {format_duration(budget)}"
        self.recap.warnings.append(msg)
        for st in self.recap.stages:
            if scope == "stage" and st.name == name:
                st.exceeded = True
        self.line(msg, "bold red")

    def warn(self, msg: str) -> None:
        self.recap.warnings.append(msg)
        self.line(f"WARNING: {msg}", "yellow")

    def step_result(self, step_name: str, host: str, result: StepResult, note: str = "") -> None:
        tally = self.recap.tally(host)
        if result.ignored:
            tally.ignored += 1
        else:
            setattr(tally, result.status.value, getattr(tally, result.status.value) + 1)
        label = result.status.value + ("*" if result.ignored else "")
        text = f"{label:<12} {host:<14} {step_name} ({format_duration(result.duration)})"
        if note:
            text += f" [{note}]"
        if result.msg:
            text += f": {' '.join(result.msg.split())}" if result.status is Status.OK else f": {result.msg}"
        if result.ignored:
            text += " — ignored"
        self.line(text, _STYLE.get(result.status))
        if self.diff and result.diff and result.status in (Status.CHANGED, Status.SKIPPED):
            self.line("    change: " + result.diff.replace("\n", "\n            "), "cyan")
        if result.failed and result.evidence:
            self.line("    " + result.evidence.replace("\n", "\n    "), "red")
        for w in result.warnings:
            self.warn(f"{host}: {w}")
        if self.verbose:
            self._details(result)

    def _details(self, result: StepResult) -> None:
        d = result.data
        for key in ("stdout", "stderr"):
            if d.get(key):
                self.line(f"    {key}: " + str(d[key]).rstrip().replace("\n", "\n    "), "dim")
        if d.get("rows"):
            rows = d["rows"][:20]
            self.line("    rows: " + json.dumps(rows, default=str)[:2000], "dim")
        if self.verbose > 1:
            self.line("    " + json.dumps(result.registered(), default=str)[:4000], "dim")

    def progress(self, host: str, done: int, total: int | None, label: str) -> None:
        """A live bar on a terminal; plain lines otherwise, at every 10 % or every 5 s.

        A label may carry live text after `` | `` (rows, LSN, rates, ETA): the part before it
        names the bar, so the text can change without starting a new one, and the text says
        the figures (the raw done/total are shown only for a label without it)."""
        if self._rich is not None:
            self._bar(host, done, total, label)
            return
        key = (host, label.split(" | ", 1)[0])
        now = time.monotonic()
        last_bucket = self._progress_last.get(key, 0.0)
        last_time = self._progress_time.setdefault(key, now)  # the first line comes at 10 % or after 5 s
        text = label.replace(" | ", ": ", 1)
        if total:
            pct = done / total * 100
            bucket = int(pct // 10)
            if bucket <= last_bucket and done < total and now - last_time < 5:
                return
            if done >= total and last_bucket >= 10:
                return
            self._progress_last[key] = bucket
            self._progress_time[key] = now
            shown = f"{text} ({pct:.0f}%)" if " | " in label else f"{text}: {done:,}/{total:,} ({pct:.0f}%)"
            self.line(f"    {host} {shown}", "dim")
        else:
            if now - last_time < 5:
                return
            self._progress_time[key] = now
            self.line(f"    {host} {text}" if " | " in label else f"    {host} {text}: {done:,}", "dim")

    def _bar(self, host: str, done: int, total: int | None, label: str) -> None:
        from rich.markup import escape as markup_escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with self._lock:
            if self._bars is None:
                self._bars = Progress(TextColumn("    {task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), console=self._rich, transient=True)
                self._bars.start()
                self._tasks = {}
            key = f"{host} {label.split(' | ', 1)[0]}"
            # masked, control characters visible, and rich markup escaped: the label holds a
            # step's name and a host's words, which are text, not "[red]" instructions
            desc = markup_escape(visible(MASKER.text(f"{host} {label.replace(' | ', ': ', 1)}")))
            task = self._tasks.get(key)
            if task is None:
                task = self._tasks[key] = self._bars.add_task(desc, total=total)
            self._bars.update(task, completed=done, total=total, description=desc)
            if total is not None and done >= total:
                self._bars.remove_task(task)
                del self._tasks[key]
                if not self._tasks:
                    self._bars.stop()
                    self._bars = None

    def close(self) -> None:
        """Stop live bars (an interrupted step may leave one running)."""
        with self._lock:
            if self._bars is not None:
                self._bars.stop()
                self._bars = None

    def print_recap(self, run_id: str, status: str, duration: float, budget: float | None, resume_hint: str | None) -> None:
        self.close()
        for st in self.recap.stages:
            if st.status == "running":  # the run stopped inside it (interrupted, or a question to the operator)
                st.duration = time.monotonic() - st.started
                st.status = "stopped"
        self.line("\nRECAP " + "─" * 66, "bold")
        width = max([14] + [len(h) for h in self.recap.hosts])
        self.line(f"{'host':<{width}}  {'ok':>4} {'changed':>7} {'skipped':>7} {'failed':>6} {'unreachable':>11} {'ignored':>7}")
        for host, t in self.recap.hosts.items():
            style = "bold red" if t.failed or t.unreachable else "green"
            self.line(f"{host:<{width}}  {t.ok:>4} {t.changed:>7} {t.skipped:>7} {t.failed:>6} {t.unreachable:>11} {t.ignored:>7}", style)
        if self.recap.stages:
            self.line("")
            for st in self.recap.stages:
                b = f"{format_duration(st.budget):>8}" if st.budget else f"{'-':>8}"
                mark = "  OVER BUDGET" if st.budget and st.duration > st.budget else ""
                self.line(f"stage {st.name:<28} {st.status:<10} {format_duration(st.duration):>8} / {b}{mark}",
                          "red" if mark or st.status in ("failed", "rolled back") else None)
        for note in self.recap.notes:
            self.line(f"note: {note}", "yellow")
        total = f"run {'aborted by the operator' if status == 'aborted' else status} in {format_duration(duration)}"
        if budget:
            total += f" (budget {format_duration(budget)}{', OVER BUDGET' if duration > budget else ''})"
        self.line(total, "bold green" if status == "succeeded" else "bold red")
        self.line(f"RUN_ID {run_id}", "bold")
        if resume_hint:
            self.line(resume_hint, "bold")
