"""engine.inventory: the Ansible YAML subset, variable precedence, host patterns, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InputError, ValidationFailed
from engine.inventory import load_inventories, match_pattern, mysql_settings, pattern_problems, ssh_settings
from engine.model import HostKeyPolicy
from engine.secrets import MASK, MASKER, Secret

INVENTORY = """\
all:
  vars:
    level: all
    only_all: 1
    mysql_user: root
  hosts:
    db1:
      ansible_host: 10.0.0.5
      ansible_port: 2222
      ansible_user: dba
      ansible_ssh_private_key_file: ~/.ssh/id_test
      level: host
      mysql_password: pa55word-db1
    db2: {}
    web1:
      connection: local
  children:
    dbs:
      vars: {level: dbs, only_dbs: 1}
      hosts:
        db1: {}
        db2: {}
      children:
        primary:
          vars: {level: primary, only_primary: 1}
          hosts:
            db2: {}
    replica:
      hosts:
        db1: {}
"""


@pytest.fixture
def inv_path(tmp_path: Path) -> Path:
    p = tmp_path / "inv.yml"
    p.write_text(INVENTORY)
    return p


@pytest.fixture
def inv(inv_path: Path):  # type: ignore[no-untyped-def]
    return load_inventories([str(inv_path)])


def test_hosts_and_groups(inv) -> None:  # type: ignore[no-untyped-def]
    assert list(inv.hosts) == ["db1", "db2", "web1"]
    assert inv.groups["all"] == ["db1", "db2", "web1"]
    assert inv.groups["dbs"] == ["db1", "db2"]  # children's hosts belong to the parent too
    assert inv.groups["primary"] == ["db2"]
    assert inv.groups["replica"] == ["db1"]
    assert inv.groups["ungrouped"] == ["web1"]
    assert set(inv.hosts["db2"].groups) == {"all", "dbs", "primary"}


def test_precedence_all_parent_child_host(inv) -> None:  # type: ignore[no-untyped-def]
    db1, db2, web1 = inv.hosts["db1"], inv.hosts["db2"], inv.hosts["web1"]
    assert web1.vars["level"] == "all"
    assert db2.vars["level"] == "primary"  # child group beats parent group beats all
    assert db1.vars["level"] == "host"  # host beats every group
    # and nothing is lost on the way down
    assert (db2.vars["only_all"], db2.vars["only_dbs"], db2.vars["only_primary"]) == (1, 1, 1)
    assert "only_primary" not in db1.vars


def test_group_order_in_the_file_does_not_change_precedence(tmp_path: Path) -> None:
    p = tmp_path / "inv.yml"
    # the child is written before its parent's vars: depth decides, not file order
    p.write_text("all:\n  children:\n    parent:\n      children:\n        child:\n          hosts: {h: {}}\n"
                 "          vars: {v: child}\n      vars: {v: parent}\n  vars: {v: all}\n")
    assert load_inventories([str(p)]).hosts["h"].vars["v"] == "child"


def test_ansible_aliases(inv) -> None:  # type: ignore[no-untyped-def]
    db1 = inv.hosts["db1"]
    assert (db1.vars["ssh_host"], db1.vars["ssh_port"], db1.vars["ssh_user"], db1.vars["ssh_key"]) == (
        "10.0.0.5", 2222, "dba", "~/.ssh/id_test")
    # Ansible's names stay visible to templates, with the same values (aliases both ways)
    assert (db1.vars["ansible_host"], db1.vars["ansible_port"], db1.vars["ansible_user"]) == ("10.0.0.5", 2222, "dba")
    s = ssh_settings(db1)
    assert (s.host, s.port, s.user) == ("10.0.0.5", 2222, "dba")
    assert s.key_file == str(Path("~/.ssh/id_test").expanduser())
    assert s.host_key_checking is HostKeyPolicy.STRICT  # verified by default


def test_connection_local(inv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert inv.hosts["web1"].connection == "local"
    assert inv.hosts["db1"].connection == "ssh"
    p = tmp_path / "alias.yml"
    p.write_text("all:\n  hosts:\n    h: {ansible_connection: local}\n")
    assert load_inventories([str(p)]).hosts["h"].connection == "local"


def test_bad_connection_is_refused_only_on_a_targeted_host(tmp_path: Path) -> None:
    from engine.inventory import target_problems

    p = tmp_path / "inv.yml"
    p.write_text("all:\n  hosts:\n    h: {connection: telnet}\n    ok: {ansible_connection: paramiko}\n")
    inv = load_inventories([str(p)])  # loaded: Ansible loads it too
    problems = target_problems(inv.hosts["h"])
    assert "uses connection 'telnet', which runbook cannot use" in problems[0].message
    assert problems[0].source.line == 3
    assert inv.hosts["ok"].connection == "ssh" and target_problems(inv.hosts["ok"]) == []


def test_no_inventory_is_localhost() -> None:
    inv = load_inventories([])
    assert list(inv.hosts) == ["localhost"]
    assert inv.hosts["localhost"].connection == "local"


def test_several_files_merge(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text("all:\n  hosts:\n    h1: {x: 1}\n")
    b.write_text("extra:\n  hosts:\n    h2: {}\n    h1: {y: 2}\n")
    inv = load_inventories([str(a), str(b)])
    assert list(inv.hosts) == ["h1", "h2"]
    assert inv.groups["extra"] == ["h2", "h1"]
    assert (inv.hosts["h1"].vars["x"], inv.hosts["h1"].vars["y"]) == (1, 2)


# --------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("db1", ["db1"]),
        ("dbs", ["db1", "db2"]),
        ("primary", ["db2"]),
        ("all", ["db1", "db2", "web1"]),
        ("*", ["db1", "db2", "web1"]),
        ("db*", ["db1", "db2"]),
        ("w?b1", ["web1"]),
        ("primary:replica", ["db2", "db1"]),  # union, in the order written (as Ansible)
        ("web1,db2", ["web1", "db2"]),
        ("dbs:&replica", ["db1"]),  # intersection
        ("dbs:!primary", ["db1"]),  # exclusion
        ("all:!dbs", ["web1"]),
        ("~^db[0-9]$", ["db1", "db2"]),  # regex
        ("~web", ["web1"]),
        ("nosuch", []),
        ("db1:&web1", []),
    ],
)
def test_patterns(inv, pattern: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert match_pattern(pattern, inv) == expected
    assert [h.name for h in inv.select(pattern)] == expected


def test_pattern_that_matches_nothing(inv) -> None:  # type: ignore[no-untyped-def]
    assert pattern_problems("dbs", inv) is None
    why = pattern_problems("primray", inv)
    assert why is not None and "matches no host" in why and "did you mean 'primary'?" in why
    why = pattern_problems("zzz", inv)
    assert why is not None and "hosts and groups:" in why and "db1" in why


# --------------------------------------------------------------------------- errors


def test_unknown_group_key_did_you_mean(tmp_path: Path) -> None:
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  host:\n    db1: {}\n  childs:\n    g: {}\n  vars:\n    1bad: x\n")
    with pytest.raises(ValidationFailed) as info:
        load_inventories([str(p)])
    lines = info.value.render().splitlines()
    assert lines == [  # '1bad' is accepted, as Ansible accepts it
        f"{p}:2:3: all: unknown key 'host' in group all — did you mean 'hosts'?",
        f"{p}:4:3: all: unknown key 'childs' in group all — did you mean 'children'?",
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- all\n", "an inventory is a mapping"),
        ("all:\n  hosts: [db1]\n", "hosts must be a mapping"),
        ("all:\n  children: [g]\n", "children must be a mapping"),
        ("all: 3\n", "a group must be a mapping"),
        ("", "inventory is empty"),
    ],
)
def test_malformed_inventories(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "inv.yml"
    p.write_text(text)
    with pytest.raises(InputError) as info:
        load_inventories([str(p)])
    assert needle in str(info.value)


INI_TEXT = "[dbs]\ndb1 ansible_host=10.0.0.1\ndb2\n\n[dbs:vars]\nmysql_user=dba\n"


@pytest.mark.parametrize("name", ["inv.yml", "inv.yaml", "inv.json"])
def test_an_ini_inventory_in_a_yaml_file_is_read_as_ini(tmp_path: Path, name: str) -> None:
    """As ansible-core: its yaml plugin fails, then its ini plugin reads the file."""
    (tmp_path / "inv.ini").write_text(INI_TEXT)
    (tmp_path / name).write_text(INI_TEXT)
    as_ini, as_yaml = load_inventories([str(tmp_path / "inv.ini")]), load_inventories([str(tmp_path / name)])
    assert {h: (v.groups, v.vars) for h, v in as_yaml.hosts.items()} == {h: (v.groups, v.vars) for h, v in as_ini.hosts.items()}
    assert as_yaml.hosts["db1"].vars["mysql_user"] == "dba"
    assert any("read as INI" in w for w in as_yaml.warnings)


@pytest.mark.parametrize(("text", "needle"), [
    ("all:\n  hosts:\n    db1: [x\n", "YAML syntax error"),  # INI fails too ('all:'): the YAML error is the one
    ("- all\n", "an inventory is a mapping"),
])
def test_a_yaml_file_neither_parser_reads_keeps_the_yaml_error(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "inv.yml"
    p.write_text(text)
    with pytest.raises(ValidationFailed) as info:
        load_inventories([str(p)])
    (only,) = info.value.problems  # the YAML error alone, not the INI parser's as well
    assert needle in only.message


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_inventories([str(tmp_path / "nope.yml")])
    assert info.value.exit_code == 2
    assert "does not exist" in str(info.value)


# --------------------------------------------------------------------------- secrets


def test_mysql_password_is_a_secret(inv) -> None:  # type: ignore[no-untyped-def]
    pw = inv.hosts["db1"].vars["mysql_password"]
    assert isinstance(pw, Secret)
    assert str(pw) == MASK and "pa55word" not in repr(pw)
    assert f"{pw}" == MASK
    assert pw.reveal() == "pa55word-db1"
    settings = mysql_settings(inv.hosts["db1"])
    assert isinstance(settings.password, Secret) and settings.password.reveal() == "pa55word-db1"
    assert "pa55word" not in repr(settings)
    # known secret values are masked wherever they leak into text
    assert MASKER.text("login failed for pa55word-db1") == f"login failed for {MASK}"


def test_templated_password_becomes_a_secret_when_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RB_TEST_DB_PW", "fr0m-the-env")
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  hosts:\n    db1:\n      mysql_password: \"{{ lookup('env', 'RB_TEST_DB_PW') }}\"\n")
    settings = mysql_settings(load_inventories([str(p)]).hosts["db1"])
    assert isinstance(settings.password, Secret)
    assert settings.password.reveal() == "fr0m-the-env"
    assert str(settings.password) == MASK


def test_mysql_settings_defaults(inv) -> None:  # type: ignore[no-untyped-def]
    web = mysql_settings(inv.hosts["web1"])
    assert (web.host, web.port, web.user, web.password, web.via) == ("127.0.0.1", 3306, "root", None, "direct")
    db1 = mysql_settings(inv.hosts["db1"])
    assert db1.host == "10.0.0.5"  # direct to the ssh host unless mysql_host says otherwise


def test_connection_values_are_checked_when_the_inventory_loads(tmp_path):
    from engine.errors import ValidationFailed

    path = tmp_path / "inv.yml"
    path.write_text("all:\n  hosts:\n    db1: {ssh_port: abc, mysql_port: 70000, mysql_via: pigeon}\n"
                    "    db2: {ssh_port: '{{ port }}', mysql_port: '3307', ssh_host_key_checking: accept-new}\n")
    with pytest.raises(ValidationFailed) as info:
        load_inventories([str(path)])
    got = [(p.source.line, p.source.col, p.path) for p in info.value.problems]
    assert got == [(3, 21, "hosts.db1.ssh_port"), (3, 38, "hosts.db1.mysql_port"), (3, 56, "hosts.db1.mysql_via")]
    assert "must be a port number" in info.value.problems[0].message


def test_a_local_host_cannot_tunnel_mysql(tmp_path):
    from engine.errors import ValidationFailed

    path = tmp_path / "inv.yml"
    path.write_text("all:\n  vars: {mysql_via: tunnel}\n  hosts:\n    ctl: {connection: local}\n")
    with pytest.raises(ValidationFailed) as info:
        load_inventories([str(path)])
    assert "mysql_via: tunnel needs an SSH connection" in info.value.render()
