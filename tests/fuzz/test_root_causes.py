"""Issue 12's table, one minimal input per root cause: each gives exit 2 and located lines
(``file:line:col: path: message — hint``), never an internal error, a traceback or a hang.

The inputs are the ones the issue names (V1-V13, H1-H3, the run-time overflows, the messages
that misled). Each runs through the CLI's own code path (``tests.fuzz.harness.invoke``).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.fuzz.harness import GOOD_INVENTORY, GOOD_RUNBOOK, invoke, unlocated

STEP = "      - name: s\n        shell: echo hi\n"


def runbook(body: str = "", *, stage: str = "", step: str = STEP, vars_: str = "") -> str:
    """A small runbook with ``body`` at the top level, ``stage`` keys on its stage and ``step``."""
    return f"name: t\n{vars_}{body}stages:\n  - name: a\n{stage}    steps:\n{step}"


def nested_groups(n: int) -> str:
    text, indent = "all:\n  children:\n", "    "
    for i in range(n):
        text += f"{indent}g{i}:\n{indent}  children:\n"
        indent += "    "
    return text + f"{indent}last:\n{indent}  hosts:\n{indent}    h1: {{connection: local}}\n"


def host(var: str) -> str:
    return f"all:\n  hosts:\n    localhost:\n      connection: local\n      {var}\n"


def bomb(levels: int) -> str:
    lines = ["  l0: &l0 lol\n"]
    for n in range(1, levels + 1):
        lines.append(f"  l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]\n")
    return "".join(lines)


# (id, runbook text or bytes, inventory text or None, extra CLI args, a needle of the message)
CASES: list[tuple[str, str | bytes, str | None, tuple[str, ...], str]] = [
    ("V1-bel", runbook(step="      - name: s\x07\n        shell: echo\n"), None, (), "control character U+0007"),
    ("V1-nul", runbook(step="      - name: s\x00\n        shell: echo\n"), None, (), "control character U+0000"),
    ("V1-fffe", "\ufffe", None, (), "control character U+FFFE"),
    ("V2-lists", runbook("x: " + "[" * 1000 + "]" * 1000 + "\n"), None, (), "nested more than"),
    ("V2-maps", runbook("x: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n"), None, (), "nested more than"),
    ("V2-alias-depth", runbook(vars_="vars:\n" + "".join(f"  v{k}: &a{k} " + "[" * 50 + (f"*a{k - 1}" if k else "1") + "]" * 50 + "\n"
                                                   for k in range(30))), None, (), "with what *a0 holds"),
    ("V2-extra-json", runbook(), None, ("-e", '{"a": ' * 3000 + "1" + "}" * 3000), "nested more than"),
    ("V3-int", runbook(vars_="vars:\n  n: " + "9" * 4301 + "\n"), None, (), "is not an integer this engine can use"),
    ("V3-timeout", runbook(step=STEP + "        timeout: " + "9" * 4301 + "\n"), None, (), "is not an integer"),
    ("V3-hex-name", runbook(step="      - name: 0x" + "f" * 5000 + "\n        shell: echo\n"), None, (), "is not an integer"),
    ("V3-template-literal", runbook(step="      - name: s\n        shell: \"{{ 9" + "9" * 4400 + " }}\"\n"), None, (), "cannot be read"),
    ("V4-int", runbook(vars_="vars:\n  n: !!int abc\n"), None, (), "is not a valid !!int"),
    ("V4-bool", runbook(vars_="vars:\n  n: !!bool maybe\n"), None, (), "is not a valid !!bool"),
    ("V4-timestamp", runbook(vars_="vars:\n  n: !!timestamp x\n"), None, (), "the YAML tag !!timestamp is not supported"),
    ("V4-extra", runbook(), None, ("-e", "{a: !!int abc}"), "is not a valid !!int"),
    ("V4-root-map-tag", "!!map [1, 2]\n", None, (), "the YAML tag !!map does not fit a list"),
    ("V4-root-seq-tag", "--- !!seq\nname: t\n", None, (), "the YAML tag !!seq does not fit a mapping"),
    ("V4-python", runbook(vars_="vars:\n  n: !!python/object:os.system x\n"), None, (), "is not supported"),
    ("V5-filter", runbook(step="      - name: s\n        shell: \"{{ 'a' | uppr }}\"\n"), None, (), "did you mean 'upper'"),
    ("V5-test", runbook(step="      - name: s\n        shell: echo\n        when: x is definedd\n", vars_="vars:\n  x: 1\n"), None, (),
     "No test named 'definedd'"),
    ("V6-jinja-deep", runbook(step="      - name: s\n        shell: \"{{ " + "(" * 400 + "1" + ")" * 400 + " }}\"\n"), None, (),
     "nested too deep"),
    ("V6-jinja-long-sum", runbook(step="      - name: s\n        shell: \"{{ " + "+".join(["1"] * 3000) + " }}\"\n"), None, (),
     "nested too deep"),
    ("V7-register-list", runbook(step=STEP + "        register: [a]\n"), None, (), "register: must be a string"),
    ("V8-null-var-key", runbook(vars_="vars: {~: 1, b: '{{ nope }}'}\n"), None, (), "'nope' is not defined"),
    ("V9-stage-targets", runbook(stage="    targets: {a: 1}\n"), None, (), "targets: must be a string"),
    ("V10-targets-regex", runbook('targets: "~("\n'), None, (), "invalid host pattern '~('"),
    ("V10-stage-targets-regex", runbook(stage='    targets: "~["\n'), None, (), "invalid host pattern"),
    ("V2-inventory-groups", runbook(), nested_groups(300), (), "nested more than"),
    ("V13-superscript-port", runbook(), host('ssh_port: "\u00b2"'), (), "ssh_port must be a port number"),
    ("V11-long-import", "name: t\nstages:\n  - import: " + "x" * 300 + ".yml\n", None, (), "File name too long"),
    ("V12-import-dev-zero", "name: t\nstages:\n  - import: /dev/zero\n", None, (), "is not a regular file"),
    ("V12-extra-dev-zero", runbook(), None, ("-e", "@/dev/zero"), "is not a regular file"),
    ("H1-billion-laughs", runbook(vars_="vars:\n" + bomb(9)), None, (), "alias bomb"),
    ("H1-recursive-alias", runbook(vars_="vars:\n  a: &r [*r]\n"), None, (), "refers to the node that contains it"),
    ("H3-inventory-bomb", runbook(), "all:\n  vars:\n" + bomb(9).replace("  l", "    l") + "  hosts:\n    localhost:\n      connection: local\n",
     (), "alias bomb"),
    ("R-budget", runbook("budget: 10000000000\n"), None, (), "longer than the 3650d"),
    ("R-timeout", runbook(step=STEP + "        timeout: 99999999999d\n"), None, (), "longer than the 3650d"),
    ("R-pause", runbook(step="      - name: s\n        pause: {seconds: 1.0e+300}\n"), None, (), "longer than the 3650d"),
    ("R-pause-text", runbook(step="      - name: s\n        pause: {seconds: 1e300}\n"), None, (), "is not a duration"),
    ("R-pause-minutes", runbook(step="      - name: s\n        pause: {minutes: 9999999999}\n"), None, (), "longer than the 3650d"),
    ("R-mysql-connect-timeout", runbook(), host("mysql_connect_timeout: .inf"), (), "must be a positive number of seconds"),
    ("M-group-cycle", runbook(), "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a: {}\n"
     "  hosts:\n    localhost: {connection: local}\n", (), "makes a loop"),
    ("R-size", runbook(step="      - name: s\n        disk_space: {path: /, need: 99999999999999E}\n"), None, (), "more than 8 EiB"),
    ("M-newline-in-import", 'name: t\nstages:\n  - import: "a\\nb.yml"\n', None, (), "a\\nb.yml"),
    ("I7-assert-undefined", runbook(step="      - name: s\n        assert:\n          that: [nope == 1]\n"), None, (), "'nope' is not defined"),
    ("I7-ignore-errors", runbook(step=STEP + "        ignore_errors: maybe\n"), None, (), "'maybe' is not a boolean"),
]


@pytest.mark.parametrize("name,text,inventory,extra,needle", CASES, ids=[c[0] for c in CASES])
def test_root_cause(tmp_path: Path, name: str, text: str | bytes, inventory: str | None, extra: tuple[str, ...], needle: str) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    inv = GOOD_INVENTORY
    if inventory is not None:
        (tmp_path / "inv.yml").write_text(inventory)
        inv = str(tmp_path / "inv.yml")
        rb.write_bytes(Path(GOOD_RUNBOOK).read_bytes())
    code, out, _ = invoke(["validate", str(rb), "-i", inv, *extra], tmp_path, limit_s=10)
    assert code == 2, out
    assert "internal error" not in out and "Traceback" not in out, out
    assert unlocated(out) == [], out
    assert needle in out, out


def test_huge_power_is_not_evaluated_by_validate(tmp_path: Path) -> None:
    """H2: Jinja2 used to fold ``7 ** 99999999`` while compiling: validate hung. Validation
    compiles without evaluating, and the sandbox refuses the power when it renders."""
    from engine.errors import TemplateError
    from engine.templating.render import ENGINE

    rb = tmp_path / "rb.yml"
    rb.write_text(runbook(step="      - name: s\n        shell: \"{{ 7 ** 99999999 }} {{ 'a' * 1000000000 }}\"\n"))
    code, out, _ = invoke(["validate", str(rb), "-i", GOOD_INVENTORY], tmp_path, limit_s=10)
    assert code == 0, out
    for source in ("{{ 7 ** 99999999 }}", "{{ 'a' * 1000000000 }}", "{{ [1] * 10**7 }}", "{{ '%999999999s' % 'a' }}",
                   "{{ 'a'.ljust(999999999) }}", "{{ 'a' | center(999999999) }}"):
        with pytest.raises(TemplateError, match="too large"):
            ENGINE.render(source, {})
    assert ENGINE.render("{{ 2 ** 64 }}", {}) == 2**64
    assert ENGINE.render("{{ '-' * 3 }}", {}) == "---"


def test_recursive_alias_hint_is_not_about_tabs(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text(runbook(vars_="vars:\n  a: &r [*r]\n"))
    code, out, _ = invoke(["validate", str(rb), "-i", GOOD_INVENTORY], tmp_path)
    assert code == 2 and "tab" not in out.lower(), out


def test_escape_sequences_are_visible_in_messages(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text(runbook(step='      - name: "\\x1b[2Jgone"\n        shel: echo\n'))
    code, out, _ = invoke(["validate", str(rb), "-i", GOOD_INVENTORY], tmp_path)
    assert code == 2
    assert "\x1b" not in out, out


def test_console_shows_escape_sequences_not_obeys_them() -> None:
    import io

    from engine.report.console import Console

    buf = io.StringIO()
    Console(buf, color=False).line("step \x1b]0;owned\x07 out\u202eput\r")
    assert buf.getvalue() == "step \\x1b]0;owned\\x07 out\\u202eput\\r\n"


def test_masking_catches_simple_transforms() -> None:
    from engine.secrets import MASK, Masker

    m = Masker()
    m.add("Tr0ub4dor&3")
    forms = ["TR0UB4DOR&3", "tr0ub4dor&3", "3&rod4bu0rT", base64.b64encode(b"Tr0ub4dor&3").decode(),
             base64.b64encode(b"Tr0ub4dor&3\n").decode(), b"Tr0ub4dor&3".hex(), b"Tr0ub4dor&3".hex().upper()]
    for form in forms:
        assert m.text(f"x {form} y") == f"x {MASK} y", form
    assert m.text("Tr0ub4") == "Tr0ub4"  # a part is not masked (the README says so)


def test_play_check_refuses_an_inventory_bomb_before_running(tmp_path: Path) -> None:
    """H3: validate said ok and ``play --check`` hung; now both refuse the inventory at load."""
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars:\n" + bomb(9).replace("  l", "    l") + "  hosts:\n    localhost:\n      connection: local\n")
    code, out, _ = invoke(["play", GOOD_RUNBOOK, "-i", str(inv), "--check", "--journal-dir", str(tmp_path / "j")], tmp_path, limit_s=10)
    assert code == 2, out
    assert "alias bomb" in out and unlocated(out) == [], out
    assert not (tmp_path / "j").exists() or not any((tmp_path / "j").iterdir())


def test_show_and_runs_print_escape_sequences_visibly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's rendered views: a step name or an output tail from another host is shown
    as ``\\x1b[2J``, not obeyed."""
    import engine.run.runner as runner

    monkeypatch.setattr(runner, "show_text", lambda run_id, jdir: "stage [a]\n  ok  h1  \x1b[2Jname\u202e\x07")
    monkeypatch.setattr(runner, "list_runs_text", lambda jdir: "RUN_ID\nr1  \x1b]0;title\x07")
    code, out, _ = invoke(["show", "r1"], tmp_path)
    assert code == 0 and out == "stage [a]\n  ok  h1  \\x1b[2Jname\\u202e\\x07\n", out
    code, out, _ = invoke(["runs"], tmp_path)
    assert code == 0 and "\\x1b]0;title\\x07" in out and "\x1b" not in out, out


def test_progress_bar_label_is_masked_and_visible() -> None:
    import io

    from engine.report.console import Console
    from engine.secrets import MASKER

    MASKER.add("hunter22")
    try:
        console = Console(io.StringIO(), color=True)
        console._bar("h1", 1, 10, "load [bold]x\x1b[2J hunter22 | rows")
        assert console._bars.tasks[0].description == "h1 load \\[bold]x\\x1b[2J ********: rows"
        console._bars.stop()
    finally:
        MASKER.clear()
