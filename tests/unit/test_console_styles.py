"""The console writes styled lines itself (rich costs ~60 µs a line, on the main thread between
two steps): what it writes must be byte for byte what rich would, or rich must write it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console as RichConsole
from rich.text import Text

from engine.model import Status, StepResult
from engine.report.console import _SGR, Console, _styled

TEXTS = ["ok", "", "\nSTAGE [s] ─────", "two\nlines", "a\n\nb", "  indented\n    evidence", "ünï ✓ 漢字 🙂", "ends\n"]
STYLES = ["bold", "dim", "red", "green", "yellow", "cyan", "bold red", "bold green", "bold yellow", "bold blue", "bold magenta"]


def _rich(text: str, style: str, system: str) -> str:
    out = io.StringIO()
    RichConsole(file=out, highlight=False, soft_wrap=True, force_terminal=True, color_system=system).print(Text(text, style=style))
    return out.getvalue()


@pytest.mark.parametrize("system", ["standard", "256", "truecolor"])
@pytest.mark.parametrize("style", STYLES)
def test_styled_line_is_what_rich_writes(style: str, system: str) -> None:
    for text in TEXTS:
        assert _styled(text, style) == _rich(text, style, system), (style, text)


def test_what_it_does_not_know_goes_to_rich() -> None:
    assert _styled("a\tb", "red") is None  # rich expands tabs
    assert _styled("x", "italic") is None
    assert _styled("x", "bold underline") is None
    assert set(_SGR) >= {w for s in STYLES for w in s.split()}


def test_console_on_a_colour_terminal_writes_rich_bytes() -> None:
    out = io.StringIO()
    console = Console(out=out, color=True)
    console._rich = RichConsole(file=out, highlight=False, soft_wrap=True, force_terminal=True, color_system="truecolor")
    console.step_result("step 1", "db1", StepResult(Status.FAILED, msg="boom", evidence="sent: x\tthen y"))
    console.line("with\ttab", "cyan")
    expected = (_rich("failed       db1            step 1 (0ms): boom", "bold red", "truecolor")
                + _rich("    sent: x\tthen y", "red", "truecolor") + _rich("with\ttab", "cyan", "truecolor"))
    assert out.getvalue() == expected
