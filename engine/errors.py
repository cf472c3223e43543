"""One error tree for the whole engine.

Every error knows where it comes from (a runbook ``file:line:col`` when there is one) and
carries a hint that says what to do next. Only ``engine.cli.main`` turns these into messages and
exit codes; library code raises and never prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.visible import visible


@dataclass(frozen=True)
class Source:
    """A place in a user's file: 1-based line and column."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col or 1}"
        return self.file


class RunbookError(Exception):
    """Root of every error the engine raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, source: Source | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.hint = hint

    #: a message of this kind is one line: a newline in a path or a value is shown as ``\n``
    one_line = False

    def render(self) -> str:
        """``file:line:col: message — hint``, control characters made visible."""
        text = f"{self.source}: {self.message}" if self.source else self.message
        if self.hint:
            text += f" — {self.hint}"
        return visible(text, newlines=not self.one_line)

    def __str__(self) -> str:
        return self.render()


class InputError(RunbookError):
    """The user's input (runbook, inventory, vars, option) is wrong: nothing was executed."""

    exit_code = 2
    one_line = True


@dataclass(frozen=True)
class Problem:
    """One validation finding. ``path`` is the JSON path inside the document."""

    source: Source
    path: str
    message: str
    hint: str | None = None
    warning: bool = False

    def render(self) -> str:
        where = f"{self.path}: " if self.path else ""
        text = f"{self.source}: {where}{self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return visible(text, newlines=False)  # one problem, one line, whatever the file holds


class ValidationFailed(InputError):
    """Several problems found at once; each is printed on its own line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.source.file, p.source.line, p.source.col))
        first = self.problems[0].render() if self.problems else "invalid input"
        super().__init__(first)

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class TemplateError(InputError):
    """A Jinja2 expression failed to parse or to evaluate (undefined variable, bad filter)."""


class ConnectError(RunbookError):
    """A host could not be reached (SSH or MySQL): the step's status is ``unreachable``."""


class OutcomeUnknown(RunbookError):
    """A command or statement was sent and its fate is unknown: it ran past its timeout, the
    connection was lost after it was sent, the operator aborted it. The step is *in doubt*:
    the journal records it so, and resume probes it (or asks) instead of running it again.

    ``completed`` counts the statements (of a multi-statement ``sql`` step) known to have
    finished before the one in doubt; the adapter leaves it at 0, the action fills it in.
    """

    def __init__(self, message: str, *, what: str | None = None, source: Source | None = None,
                 hint: str | None = None, stopped: str = ""):
        super().__init__(message, source=source, hint=hint)
        self.what = what  # the command or SQL, masked
        self.stopped = stopped  # how the engine stopped it (KILL QUERY, killpg, ...), for evidence
        self.completed = 0


class CommandTimeout(OutcomeUnknown):
    """A command or query ran past its timeout (and was stopped: its effect is unknown)."""


class DeadlinePassed(RunbookError):
    """The step's ``timeout:`` ran out before the next statement, command or poll was sent:
    that one did not run (what ran before it did)."""


class FileReadError(RunbookError):
    """A file on a host (or the control machine) cannot be read."""


class SqlError(RunbookError):
    """A MySQL/MariaDB error, with errno, SQLSTATE and a diagnosis of what to do next."""

    def __init__(
        self,
        message: str,
        *,
        errno: int | None = None,
        sqlstate: str | None = None,
        sql: str | None = None,
        source: Source | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, source=source, hint=hint)
        self.errno = errno
        self.sqlstate = sqlstate
        self.sql = sql

    def render(self) -> str:
        code = f"ERROR {self.errno}" if self.errno is not None else "ERROR"
        if self.sqlstate:
            code += f" ({self.sqlstate})"
        text = f"{code}: {self.message}"
        if self.source:
            text = f"{self.source}: {text}"
        if self.hint:
            text += f" — {self.hint}"
        return visible(text)


class LostConnection(OutcomeUnknown, SqlError):
    """The connection to MySQL broke after a statement was sent (2013, or the connection was
    killed under it): it is an :class:`SqlError` (errno, diagnosis) whose outcome is unknown."""

    def __init__(self, message: str, *, errno: int | None = None, sqlstate: str | None = None, sql: str | None = None,
                 hint: str | None = None):
        SqlError.__init__(self, message, errno=errno, sqlstate=sqlstate, sql=sql, hint=hint)
        self.what = sql
        self.stopped = ""
        self.completed = 0


class ActionError(RunbookError):
    """An action failed for a reason of its own (assertion, fail, refused precondition)."""


class JournalError(RunbookError):
    """The journal cannot be read or written, or a run cannot be resumed as asked."""


class RunLocked(InputError):
    """Another live process holds the run or targets the same host."""


class NeedsDecision(RunbookError):
    """A step is in doubt after a crash and only the operator can say whether it ran."""
