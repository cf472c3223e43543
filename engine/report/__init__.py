"""Reports of a run, rendered from its journal: JSON, JUnit XML, Markdown and HTML.

The journal is the single source: :func:`render_report` builds one
:class:`~engine.report.model.ReportModel` from a :class:`~engine.journal.JournalState` and
renders it, so every format tells the same story. Secrets are masked when the model is built
and once more on the finished text, as a last line of defence. The live console output is
:mod:`engine.report.console`.

```python
text = render_report(read_journal(journal_dir(None), "20261122-031502-7f3a"), "html")
write_report(Path("postmortem.html"), text)
```

A report carries row data (verify samples, diffs, registered results), so it is written as the
journal is: readable by its owner only (0600), whatever the umask, also over an older file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.secrets import MASKER

if TYPE_CHECKING:
    from engine.journal import JournalState
    from engine.report.model import ReportModel

#: the formats of ``runbook report --format`` (and ``--report`` by suffix)
FORMATS = ("json", "junit", "md", "html")


def _renderer(fmt: str) -> Callable[[ReportModel], str]:
    # Imported on demand: the console (imported by every run) must not pay for Jinja2 and XML.
    if fmt == "json":
        from engine.report.json_report import render_json

        return render_json
    if fmt == "junit":
        from engine.report.junit import render_junit

        return render_junit
    if fmt == "md":
        from engine.report.markdown import render_markdown

        return render_markdown
    if fmt == "html":
        from engine.report.html import render_html

        return render_html
    raise InputError(f"unknown report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def render_report(state: JournalState, fmt: str) -> str:
    """The report of one run in ``fmt`` (json, junit, md or html), secrets masked."""
    from engine.report.model import build_model

    render = _renderer(fmt)
    return MASKER.text(render(build_model(state)))


def write_report(path: Path, text: str) -> None:
    """Write a report 0600: into a new temporary file in the same directory, then renamed over
    ``path`` — never written through a symlink or into someone else's file, and a reader never
    sees half a report. Raises ``OSError``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp creates it 0600
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


__all__ = ["FORMATS", "render_report", "write_report"]
