"""``innodb_recovery``: watch InnoDB bring a crashed server back, or estimate how long it would take.

``mode: watch`` follows the error log from the server's last start (SSH or local shell),
shows the phase (analysis, redo, undo), the LSN progress and an ETA live, and returns when the
server accepts connections and no recovered transaction is still rolling back. It fails at
the first fatal line (with that line, a diagnosis and the next step) or at ``timeout``.
While the server recovers it refuses connections: the SQL session is opened only once the log
says it is ready, and a refused connection then is waited out, never reported as an
unreachable host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.actions.base import Action, duration_problem, register
from engine.language.durations import format_duration, parse_duration
from engine.errors import CommandTimeout, ConnectError, SqlError
from engine.model import Status, StepResult
from engine.mysql.error_log import LogTail, locate_error_log
from engine.mysql.recovery_log import REDO_PROGRESS, classify, parse_line, parse_text
from engine.mysql.recovery_state import RecoveryState

DEFAULT_TIMEOUT = 30 * 60.0
MISSING_LOG_WAIT = 30.0  # for the error log file to appear
#: after the log says every recovered transaction is rolled back... or when it never says so
#: (an old server, a lost line), INNODB_TRX showing none rolling back for this long is enough
QUIET_UNDO = 10.0

_ROLLING_BACK = ("SELECT COUNT(*) AS n, COALESCE(SUM(trx_rows_modified), 0) AS rows_ "
                 "FROM information_schema.INNODB_TRX WHERE trx_state = 'ROLLING BACK'")


def _duration(value: Any, default: float) -> float:
    return default if value is None else parse_duration(value)


@dataclass
class _Eta:
    """Remaining time of a phase from how far it got since the watch first saw it."""

    seen: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __call__(self, phase: str, fraction: float | None) -> float | None:
        if fraction is None:
            return None
        now = time.monotonic()
        t0, f0 = self.seen.setdefault(phase, (now, fraction))
        if fraction >= 1.0:
            return 0.0
        if fraction <= f0 or now - t0 < 0.5:
            return None
        return (now - t0) / (fraction - f0) * (1.0 - fraction)


@register
class InnodbRecovery(Action):
    """Watch InnoDB crash recovery, or estimate it (read-only; runs in check mode).

    ```yaml
    - name: Start the crashed server
      mysql_service: {state: started, wait: false}
    - name: Watch crash recovery
      innodb_recovery:
        mode: watch                 # watch (default) | estimate
        error_log: /var/log/mysql/error.log   # default: inventory mysql_error_log, @@log_error,
                                              # the option files, the datadir's newest *.err
        timeout: 30m
      register: rec
    - name: How long would a crash take now?
      innodb_recovery: {mode: estimate, sample: 5s}
    ```

    ``watch`` registers ``crashed``, ``phases`` (``{name, started, ended, seconds}`` in server
    time: analysis, redo, undo), ``checkpoint_lsn``, ``recovered_to_lsn``,
    ``rolled_back_transactions``, ``ready``, ``seconds``, and ``error_log``,
    ``transactions_to_roll_back``, ``rows_to_undo``, ``prepared_transactions``, ``fatal``
    (``{kind, line, diagnosis, next_step}``). ``estimate`` registers ``lsn``,
    ``checkpoint_lsn``, ``checkpoint_age``, ``redo_capacity``, ``dirty_pages``,
    ``redo_write_bytes_per_s``, ``apply_bytes_per_s``, ``rows_to_undo``,
    ``estimated_seconds`` and the ``formula`` with its inputs.
    """

    name = "innodb_recovery"
    mutating = False
    idempotent = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "mode": {"enum": ["watch", "estimate"], "description": "watch (default): follow a recovery; estimate: a running server"},
            "error_log": {"type": "string", "minLength": 1, "description": "path of the error log on the host"},
            "timeout": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "watch: give up after (default 30m)"},
            "poll": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "watch: between reads (default 1s)"},
            "sample": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "description": "estimate: LSN sampling time (default 2s)"},
            "apply_speed": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
                            "description": "estimate: redo apply speed in bytes/s or a size per second like 200M (default: measured)"},
            "undo_rows_per_s": {"type": "integer", "minimum": 1, "description": "estimate: rollback speed (default 50000)"},
        },
    }

    @classmethod
    def static_problems(cls, args: Any) -> list[tuple[str, str]]:
        return duration_problem(args, "timeout", "poll", "sample")

    def apply(self) -> StepResult:
        args = self.args or {}
        if args.get("mode", "watch") == "estimate":
            return self._estimate(args)
        return _Watch(self, args).run()

    def _estimate(self, args: dict[str, Any]) -> StepResult:
        from engine.mysql.recovery_estimate import estimate
        from engine.language.sizes import parse_size

        speed = args.get("apply_speed")
        if isinstance(speed, str):
            speed = parse_size(speed.removesuffix("/s"))
        data = estimate(self.ctx.sql(), sample=_duration(args.get("sample"), 2.0), apply_speed=speed,
                        undo_rows_per_s=args.get("undo_rows_per_s"))
        msg = (f"a crash now would need ≈{format_duration(data['estimated_seconds'])} of recovery: "
               f"{data['checkpoint_age']} bytes of redo at {data['apply_bytes_per_s'] / 1048576:.0f} MB/s"
               f" + {data['rows_to_undo']} rows to undo ({data['formula']})")
        return StepResult(Status.OK, msg=msg, data=data)


class _Watch:
    """One watch: the log tail, the folded state, the live display, the SQL check at the end."""

    def __init__(self, action: InnodbRecovery, args: dict[str, Any]):
        self.ctx = action.ctx
        self.args = args
        self.timeout = _duration(args.get("timeout"), self.ctx.timeout or DEFAULT_TIMEOUT)
        self.poll = _duration(args.get("poll"), 1.0)
        self.state = RecoveryState()
        self.eta = _Eta()
        self.shown: str | None = None
        self.sql_error = ""
        self.undo_rows_left: int | None = None
        self.quiet_since: float | None = None

    def run(self) -> StepResult:
        start = time.monotonic()
        path, how = locate_error_log(self.ctx, self.args.get("error_log"))
        tail = LogTail(self.ctx.shell(), path)
        appear = time.monotonic() + min(self.timeout, MISSING_LOG_WAIT)
        while not tail.exists():  # a server's first start creates it; a typo never will
            if time.monotonic() > appear:
                return StepResult(Status.FAILED, msg=f"the error log {path} ({how}) does not exist on {self.ctx.host.name}",
                                  data=self._data(path, how, start), evidence="give the right error_log: or mysql_error_log")
            time.sleep(self.poll)
        self._feed(tail.since_last_start())
        if self.ctx.check_mode:
            return self._check(path, how, start)
        while True:
            if self.state.failed:
                return self._fatal(path, how, start)
            if self._finished():
                # The log was read before the server answered: a start written in between
                # (a very fast recovery) must not be missed, or the run that crashed is reported.
                text, reset = tail.read_new()
                if not reset and not self._feed(text):
                    self._show(close=True)
                    return self._done(path, how, start)
                if reset:
                    self.state = RecoveryState()
                    self._feed(text)
                continue
            if time.monotonic() - start > self.timeout:
                return self._timeout(path, how, start)
            self._show()
            time.sleep(self.poll)
            text, reset = tail.read_new()
            if reset:
                self.state = RecoveryState()
            self._feed(text)
            self._partial(tail.partial)

    # -- reading the log ---------------------------------------------------------------------
    def _feed(self, text: str) -> bool:
        """Fold new log lines; True when the server started again in them."""
        started = False
        for event in parse_text(text):
            self.state.feed(event)
            if event.kind == "start":  # the server (re)started: what was seen before is history
                self.sql_error, self.undo_rows_left, self.quiet_since = "", None, None
                started = True
        return started

    def _partial(self, line: str) -> None:
        """A line still being written: MySQL 5.7 prints redo percents on one growing line."""
        if line.strip():
            event = classify(parse_line(line))
            if event is not None and event.kind == REDO_PROGRESS:
                self.state.feed(event)

    # -- is it over? ----------------------------------------------------------------------------
    def _finished(self) -> bool:
        st = self.state
        if not st.ready or st.shutdown:
            return False
        if not self._accepts_connections():
            return False
        n, rows = self._rolling_back()
        if n is None:
            return False
        self.undo_rows_left = rows
        if st.undo_done or (n == 0 and not st.rollback_pending):
            return True
        if n == 0:  # the log promised a rollback it has not reported done: give it a moment
            self.quiet_since = self.quiet_since or time.monotonic()
            return time.monotonic() - self.quiet_since >= QUIET_UNDO
        self.quiet_since = None
        return False

    def _accepts_connections(self) -> bool:
        """The log says ready; the server is the judge. A refusal now is waited out."""
        try:
            self.ctx.sql().query("SELECT 1")
            self.sql_error = ""
            return True
        except (ConnectError, SqlError, CommandTimeout) as exc:
            self.ctx.conns.reset_sql()
            self.sql_error = exc.render()
            return False

    def _rolling_back(self) -> tuple[int | None, int]:
        try:
            row = self.ctx.sql().query(_ROLLING_BACK).rows[0]
            return int(row["n"] or 0), int(row["rows_"] or 0)
        except (ConnectError, SqlError, CommandTimeout, IndexError) as exc:
            self.ctx.conns.reset_sql()
            self.sql_error = str(exc)
            return None, 0

    # -- live display -------------------------------------------------------------------------
    def _show(self, close: bool = False) -> None:
        st = self.state
        phase = st.phase
        if self.shown is not None and (phase != self.shown or close):
            self.ctx.progress(1, 1, f"InnoDB {self.shown} | done")  # closes the bar of the phase that ended
        self.shown = None if close else phase
        if close:
            return
        done, total, detail = 0, None, ""
        if phase == "analysis":
            if st.scanned_lsn and st.checkpoint_lsn is not None:
                done = max(0, st.scanned_lsn - st.checkpoint_lsn)
                detail = f"scanned redo to LSN {st.scanned_lsn} from checkpoint {st.checkpoint_lsn}"
            else:
                detail = f"from checkpoint LSN {st.checkpoint_lsn}" if st.checkpoint_lsn else "reading the redo log"
        elif phase == "redo":
            frac = st.fraction("redo")
            eta = self.eta("redo", frac)
            if frac is not None:
                done, total = int(frac * 1000), 1000
            lsn = f"LSN {st.applied_lsn}/{st.end_lsn}" if st.applied_lsn and st.end_lsn else f"to LSN {st.end_lsn or st.scanned_lsn}"
            detail = f"{lsn}{f', {frac:.0%}' if frac is not None else ''}{f', ETA {format_duration(eta)}' if eta is not None else ''}"
        elif phase == "undo":
            total_rows = st.rows_to_undo
            if total_rows and self.undo_rows_left is not None:
                done, total = max(0, total_rows - self.undo_rows_left), total_rows
                eta = self.eta("undo", done / total_rows)
                detail = f"{done}/{total_rows} rows rolled back{f', ETA {format_duration(eta)}' if eta is not None else ''}"
            else:
                detail = f"{len(st.rolled_back)}/{st.transactions_to_roll_back or '?'} transactions rolled back"
        elif phase == "ready":
            detail = "ready for connections"
            if self.sql_error:  # maybe the run that crashed: waiting for the new start's lines
                when = st.ready_at.isoformat(sep=" ") if st.ready_at else "?"
                detail = f"the log's last start was ready at {when}, but connections fail (has the server been started again?): {self.sql_error}"
        else:
            detail = "waiting for the server to start" if phase == "starting" else phase
        self.ctx.progress(done, total, f"InnoDB {phase} | {detail}")

    # -- results ---------------------------------------------------------------------------------
    def _rolled_back(self) -> int:
        st = self.state
        rolled = len(st.rolled_back)
        if st.undo_done and st.transactions_to_roll_back is not None:
            rolled = max(rolled, st.transactions_to_roll_back - st.prepared)
        return rolled

    def _still_prepared(self) -> None:
        """XA transactions the log found prepared: the binary log's own recovery resolves those
        of its two-phase commits, so ask the server which are really left (``XA RECOVER``)."""
        if not self.state.prepared:
            return
        try:
            self.state.prepared = len(self.ctx.sql().query("XA RECOVER").rows)
        except (ConnectError, SqlError, CommandTimeout):
            self.ctx.conns.reset_sql()  # no privilege to look: keep what the log said

    def _data(self, path: str, how: str, start: float) -> dict[str, Any]:
        st = self.state
        rolled = self._rolled_back()
        fatal = None
        if st.fatal is not None and st.fatal.fatal is not None:
            f = st.fatal.fatal
            fatal = {"kind": f.kind, "line": st.fatal.line.raw, "diagnosis": f.diagnosis, "next_step": f.next_step}
        return {
            "crashed": st.crashed,
            "phases": st.phase_list(),
            "checkpoint_lsn": st.checkpoint_lsn,
            "recovered_to_lsn": st.recovered_to_lsn,
            "rolled_back_transactions": rolled,
            "transactions_to_roll_back": st.transactions_to_roll_back,
            "rows_to_undo": st.rows_to_undo,
            "prepared_transactions": st.prepared,
            "force_recovery": st.force_recovery,
            "ready": st.ready and st.fatal is None and not self.sql_error,
            "phase": st.phase,
            "server_started": st.started.isoformat() if st.started else None,
            "seconds": round(time.monotonic() - start, 3),
            "error_log": path,
            "error_log_found_by": how,
            "fatal": fatal,
        }

    def _summary(self) -> str:
        st = self.state
        parts = [f"{p['name']} {format_duration(p['seconds'])}" for p in st.phase_list() if p["seconds"] is not None]
        lsn = f"checkpoint LSN {st.checkpoint_lsn} → {st.recovered_to_lsn}" if st.checkpoint_lsn else ""
        undo = ""
        if st.transactions_to_roll_back:
            undo = (f"{self._rolled_back()} transaction(s) rolled back ({st.rows_to_undo} row operations to undo "
                    f"in {st.transactions_to_roll_back} recovered transaction(s))")
        return "; ".join(x for x in (", ".join(parts), lsn, undo) if x)

    def _done(self, path: str, how: str, start: float) -> StepResult:
        prepared_in_log = self.state.prepared
        self._still_prepared()
        data = self._data(path, how, start)
        data["prepared_in_log"] = prepared_in_log
        data["ready"] = True
        warnings = []
        if self.state.force_recovery:
            warnings.append(f"the server runs with innodb_force_recovery={self.state.force_recovery}: dump the data, "
                            "then restart it without that option")
        if self.state.prepared:
            warnings.append(f"{self.state.prepared} XA transaction(s) are still prepared: XA RECOVER, then commit or roll back")
        if self.state.crashed:
            msg = f"crash recovery finished, server ready after {format_duration(data['seconds'])}: {self._summary()}"
        else:
            msg = f"no crash recovery (clean start); server ready after {format_duration(data['seconds'])}"
        return StepResult(Status.OK, msg=msg, data=data, warnings=warnings)

    def _check(self, path: str, how: str, start: float) -> StepResult:
        """Check mode: say what the log shows now; never wait (nothing was started)."""
        st = self.state
        msg = (f"check mode: not waiting; the error log's last start ({st.started.isoformat() if st.started else 'not found'}) "
               f"reached phase {st.phase}")
        if st.fatal is not None and st.fatal.fatal is not None:
            msg += f" ({st.fatal.fatal.title}: {st.fatal.line.text})"
        elif self._summary():
            msg += f" ({self._summary()})"
        return StepResult(Status.SKIPPED, msg=msg, data=self._data(path, how, start))

    def _fatal(self, path: str, how: str, start: float) -> StepResult:
        self._show(close=True)
        st = self.state
        assert st.fatal is not None and st.fatal.fatal is not None
        f = st.fatal.fatal
        lines = [f"{path} ({how}):", st.fatal.line.raw]
        if st.aborted is not None and st.aborted is not st.fatal:
            lines.append(st.aborted.line.raw)
        lines += [f"hint from the server: {h}" for h in st.hints[:3]]
        msg = f"{f.title}: {f.diagnosis} — next: {f.next_step}"
        return StepResult(Status.FAILED, msg=msg, data=self._data(path, how, start), evidence="\n".join(lines))

    def _timeout(self, path: str, how: str, start: float) -> StepResult:
        self._show(close=True)
        st = self.state
        where = {"starting": "the server has not started (no start line in the log since the watch began)",
                 "stopped": "the server was shut down", "ready": "the log says ready but connections are refused"}
        msg = f"still recovering after {format_duration(self.timeout)}: phase {st.phase}"
        msg += f" ({where[st.phase]})" if st.phase in where else ""
        if self.sql_error:
            msg += f"; last connection attempt: {self.sql_error}"
        evidence = f"{path} ({how}); {self._summary() or 'no recovery line yet'}"
        return StepResult(Status.FAILED, msg=msg, data=self._data(path, how, start), evidence=evidence)

