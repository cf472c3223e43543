"""engine.inventory reads what Ansible reads, without Ansible installed: each pattern form,
INI, ranges, host:port, group_vars/host_vars precedence, !vault/!unsafe, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InputError, ValidationFailed
from engine.inventory import PatternError, load_inventories, match_pattern, mysql_settings, ssh_settings, split_pattern, target_problems
from engine.inventory.ini import ini_value
from engine.inventory.ranges import expand_host_pattern, parse_address

INV = """\
[primary]
db1
[replicas]
db2
db3
[db:children]
primary
replicas
[web]
web1
web2
"""


@pytest.fixture
def inv(tmp_path: Path):  # type: ignore[no-untyped-def]
    p = tmp_path / "hosts.ini"
    p.write_text(INV)
    return load_inventories([str(p)])


@pytest.mark.parametrize(("pattern", "expected"), [
    ("db", ["db1", "db2", "db3"]),
    ("primary:!db3:replicas", ["db1", "db2"]),  # unions first, then !, whatever the order written
    ("!db1:db", ["db2", "db3"]),
    ("db:&replicas:!db2", ["db3"]),
    ("&replicas:db", ["db2", "db3"]),
    ("db[1]", ["db2"]),  # subscripts index the group's hosts
    ("db[-1]", ["db3"]),
    ("db[0:1]", ["db1", "db2"]),  # inclusive slice
    ("db[1:]", ["db2", "db3"]),
    ("replicas[0]", ["db2"]),
    ("~b2", []),  # anchored: re.match, not search
    ("~db[23]", ["db2", "db3"]),
    ("!db1", ["web1", "web2", "db2", "db3"]),  # a leading ! starts from all
    ("db3,db1", ["db3", "db1"]),  # the order written
    ("web2:db1", ["web2", "db1"]),
    ("web db1", ["web1", "web2", "db1"]),  # whitespace separates too
    ("w*", ["web1", "web2"]),  # a glob matches the group web and its hosts
    ("ungrouped", []),
    # all: group by group, breadth first (web's hosts come before those of db's children), as Ansible
    ("all", ["web1", "web2", "db1", "db2", "db3"]),
])
def test_pattern_forms(inv, pattern: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert match_pattern(pattern, inv) == expected


@pytest.mark.parametrize("pattern", ["~(", "db[7]", "db[-9]"])
def test_pattern_errors_are_located_input_errors(inv, pattern: str) -> None:  # type: ignore[no-untyped-def]
    from engine.errors import Source

    with pytest.raises(PatternError) as info:
        match_pattern(pattern, inv, source=Source("rb.yml", 3, 10))
    assert info.value.exit_code == 2 and info.value.source is not None and info.value.source.line == 3


def test_split_keeps_ipv6_and_ranges_whole() -> None:
    assert split_pattern("2001:db8::1") == ["2001:db8::1"]
    assert split_pattern("db[1:3]") == ["db[1:3]"]
    assert split_pattern("a:b,c") == ["a:b", "c"]
    assert split_pattern("a:!b:&c") == ["a", "!b", "&c"]


def test_ranges_and_ports() -> None:
    assert expand_host_pattern("db[01:03].example.com") == (["db01.example.com", "db02.example.com", "db03.example.com"], None)
    assert expand_host_pattern("db-[a:c]") == (["db-a", "db-b", "db-c"], None)
    assert expand_host_pattern("w[1:9:4]") == (["w1", "w5", "w9"], None)
    assert expand_host_pattern("db[1:2]:2222") == (["db1", "db2"], 2222)
    assert parse_address("[2001:db8::1]:2200") == ("2001:db8::1", 2200)
    assert parse_address("2001:db8::1") == ("2001:db8::1", None)


def test_ini_values_are_typed_as_ansible_types_them() -> None:
    assert [ini_value(v) for v in ("3307", "True", "[1, 2]", "yes", "FALSE", "'03#x'", "(1, 2)", "1+2j")] == \
        [3307, True, [1, 2], "yes", "FALSE", "03#x", [1, 2], "(1+2j)"]
    assert ini_value("(" * 5000) == "(" * 5000  # too deep for literal_eval: a string, not a crash


def test_host_port_keys_and_aliases(tmp_path: Path) -> None:
    p = tmp_path / "inv.yml"
    p.write_text('all:\n  hosts:\n    "db1:2222": {ssh_host: 10.0.0.1}\n    db2: {ansible_host: 10.0.0.2, ansible_ssh_host: 10.0.0.3}\n')
    inv = load_inventories([str(p)])
    db1, db2 = inv.hosts["db1"], inv.hosts["db2"]
    assert (db1.vars["ansible_port"], db1.vars["ssh_port"], db1.vars["ansible_host"]) == (2222, 2222, "10.0.0.1")
    assert ssh_settings(db1).port == 2222
    assert db2.vars["ssh_host"] == db2.vars["ansible_host"] == "10.0.0.3"  # Ansible's ssh reads ansible_ssh_host last


def test_group_vars_and_host_vars_precedence(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.ini").write_text("[dbs]\ndb1 level=host_inline\ndb2\n[dbs:vars]\nlevel=dbs_inline\n[all:vars]\nlevel=all\n")
    (tmp_path / "inv" / "group_vars" / "dbs").mkdir(parents=True)
    (tmp_path / "inv" / "group_vars" / "dbs" / "main.yml").write_text("level: gv_dbs\nmysql_identity: pinned\n")
    (tmp_path / "inv" / "host_vars").mkdir()
    (tmp_path / "inv" / "host_vars" / "db1.yaml").write_text("level: hv_db1\n")
    (tmp_path / "book" / "host_vars").mkdir(parents=True)
    (tmp_path / "book" / "host_vars" / "db1").write_text("level: book_db1\n")
    inv = load_inventories([str(tmp_path / "inv")], playbook_dir=str(tmp_path / "book"))
    assert inv.hosts["db1"].vars["level"] == "book_db1"
    assert inv.hosts["db2"].vars["level"] == "gv_dbs"  # group_vars/ beat the inventory file's group vars
    assert inv.hosts["db2"].vars["mysql_identity"] == "pinned"  # a pin kept in group_vars/ is not lost
    assert str(tmp_path / "inv" / "group_vars" / "dbs" / "main.yml") in [str(Path(f)) for f in inv.files]


def test_group_priority(tmp_path: Path) -> None:
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  children:\n    a: {hosts: {h: {}}, vars: {v: a, ansible_group_priority: 10}}\n    b: {hosts: {h: {}}, vars: {v: b}}\n")
    assert load_inventories([str(p)]).hosts["h"].vars["v"] == "a"


def test_explicit_ungrouped_keeps_its_hosts(tmp_path: Path) -> None:
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  children:\n    ungrouped:\n      hosts: {lone: {}, both: {}}\n    g:\n      hosts: {both: {}}\n")
    inv = load_inventories([str(p)])
    assert inv.groups["ungrouped"] == ["lone"] and match_pattern("ungrouped", inv) == ["lone"]


def test_vault_and_unsafe(tmp_path: Path) -> None:
    from engine.errors import TemplateError
    from engine.templating.render import ENGINE, lazify

    p = tmp_path / "inv.yml"
    p.write_text("all:\n  hosts:\n    db1:\n      mysql_password: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6162\n"
                 "      motd: !unsafe '{{ not_a_var }}'\n")
    db1 = load_inventories([str(p)]).hosts["db1"]
    assert ENGINE.render("{{ motd }}", lazify(db1.vars)) == "{{ not_a_var }}"
    with pytest.raises(TemplateError) as info:
        ENGINE.render("{{ mysql_password }}", lazify(db1.vars))
    assert "ansible-vault" in info.value.render() and "mysql_password" in info.value.render()
    with pytest.raises(InputError) as info2:
        mysql_settings(db1)
    assert "ansible-vault" in info2.value.render()


def test_near_miss_keys_get_a_did_you_mean(tmp_path: Path) -> None:
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  vars:\n    mysql_users: [app]\n  hosts:\n    db1: {mysql_prot: 3307, ssh_hots: 10.0.0.1, mysql_pasword: x}\n")
    with pytest.raises(ValidationFailed) as info:
        load_inventories([str(p)])
    text = info.value.render()
    for wrong, right in (("mysql_prot", "mysql_port"), ("ssh_hots", "ssh_host"), ("mysql_pasword", "mysql_password")):
        assert f"unknown connection variable {wrong!r}" in text and f"did you mean {right!r}?" in text
    assert "mysql_users" not in text  # a role's list is not a misspelling
    assert all(pr.source.line == 5 for pr in info.value.problems)


def test_targeted_host_checks(tmp_path: Path) -> None:
    cnf = tmp_path / "my.cnf"
    cnf.write_text("user=root\n[client]\n")
    p = tmp_path / "inv.yml"
    p.write_text(f"all:\n  hosts:\n    sw1: {{ansible_connection: network_cli}}\n    db1: {{ansible_become: true, ansible_become_method: su}}\n"
                 f"    db2: {{ansible_ssh_common_args: '-o ProxyCommand=\"ssh -W %h:%p bastion\" -o ForwardX11=yes'}}\n"
                 f"    db3: {{mysql_option_file: {cnf}}}\n    db4: {{ansible_connection: ansible.builtin.ssh}}\n")
    inv = load_inventories([str(p)])
    msgs = {h: " ".join(pr.message for pr in target_problems(inv.hosts[h])) for h in inv.hosts}
    assert "network_cli" in msgs["sw1"] and "only uses sudo" in msgs["db1"] and "-o ForwardX11=yes (in ansible_ssh_common_args)" in msgs["db2"]
    assert "a setting before any [section] header" in msgs["db3"]
    assert msgs["db4"] == ""
    with pytest.raises(InputError) as info:
        mysql_settings(inv.hosts["db3"])
    assert info.value.source is not None and info.value.source.file == str(cnf) and info.value.source.line == 1


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("bad.ini", b"[dbs]\ndb1 x=\xff\n", "not UTF-8"),
    ("bad.ini", b"[dbs\n", None),
    ("bad.ini", b"[dbs:vars]\nx=1\n", "never declared"),
    ("bad.ini", b"[a:children]\nb\n", "undeclared group 'b'"),
    ("bad.ini", b"[dbs]\ndb[1:\n", None),
    ("bad.yml", b"all:\n  hosts: 'db1, db2'\n", "reads as one name"),
    ("bad.yml", b"a:\n" + b"".join(b"  " * i + b"  children:\n" + b"  " * i + b"    g%d:\n" % i for i in range(120)), None),
    ("deep.yml", b"all:\n  vars:\n    x: " + b"[" * 3000 + b"]" * 3000 + b"\n", None),
    ("bad.toml", b"x = 1\n", "TOML"),
    ("script", b"#!/bin/sh\necho {}\n", "scripts are not supported"),
    ("plugin.yml", b"plugin: aws_ec2\n", "inventory plugins"),
])
def test_bad_sources_are_located_errors_never_tracebacks(tmp_path: Path, name: str, content: bytes, needle: str | None) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    try:
        load_inventories([str(p)])
    except InputError as exc:
        text = exc.render()
        assert str(p) in text
        if needle:
            assert needle in text
    else:
        assert needle is None  # accepted (deep but valid): no crash either way


def test_ssh_args_are_read_as_openssh_reads_them(tmp_path: Path) -> None:
    from engine.inventory.connection import ssh_args_options

    p = tmp_path / "inv.yml"
    p.write_text("all:\n  vars:\n    ansible_ssh_args: -C -o ControlMaster=auto -o ControlPersist=60s\n"
                 "    ansible_ssh_common_args: \"-o ProxyCommand='ssh -W %h:%p bastion' -o StrictHostKeyChecking=no -oPort=2200\"\n"
                 "    ansible_ssh_extra_args: -o StrictHostKeyChecking=yes -J jump1 -o UserKnownHostsFile=/dev/null\n"
                 "  hosts:\n    db1: {}\n    db2: {ansible_port: 22, ansible_ssh_extra_args: -A}\n")
    inv = load_inventories([str(p)])
    opts, unsupported = ssh_args_options(inv.hosts["db1"])
    assert opts == {"proxy_command": "ssh -W %h:%p bastion", "host_key_checking": "off", "port": "2200",
                    "proxy_jump": "jump1", "known_hosts": "/dev/null"}  # the first StrictHostKeyChecking wins
    assert unsupported == []
    s = ssh_settings(inv.hosts["db1"])
    assert (s.port, s.proxy_command, s.proxy_jump, s.known_hosts) == (2200, "ssh -W %h:%p bastion", "jump1", "/dev/null")
    assert s.host_key_checking.value == "off"
    assert "-A (in ansible_ssh_extra_args)" in " ".join(target_problems(inv.hosts["db2"])[0].message.split(": ", 1)[1:])


@pytest.mark.parametrize(("name", "content"), [
    ("nul.yml", b"all:\n  hosts:\n    db1\x00: {}\n"),
    ("badsection.ini", b"[dbs:childs]\nprimary\n[primary]\nh\n"),
])
def test_control_characters_and_bad_sections_are_located_errors(tmp_path: Path, name: str, content: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_inventories([str(p)])
    assert str(p) in info.value.render()


def test_limit_file(tmp_path: Path, inv) -> None:  # type: ignore[no-untyped-def]
    from engine.inventory import limit_pattern

    f = tmp_path / "site.retry"
    f.write_text("db3\ndb1\n\n")
    limit = limit_pattern(f"@{f},web1")
    assert limit == "db3,db1,web1" and match_pattern(limit, inv) == ["db3", "db1", "web1"]
    with pytest.raises(InputError):
        limit_pattern(f"@{tmp_path / 'nope'}")


def test_ini_comments_may_hold_any_bytes_other_lines_must_be_utf8(tmp_path: Path) -> None:
    ok, bad = tmp_path / "ok.ini", tmp_path / "bad.ini"
    ok.write_bytes(b"# caf\xe9\n[dbs]\ndb1\n")
    bad.write_bytes(b"[dbs]\ndb1 x=caf\xe9\n")
    assert list(load_inventories([str(ok)]).hosts) == ["db1"]
    with pytest.raises(InputError) as info:
        load_inventories([str(bad)])
    assert info.value.render().startswith(f"{bad}:2:10: inventory is not UTF-8")


def test_implicit_localhost_is_explained(inv) -> None:  # type: ignore[no-untyped-def]
    from engine.inventory import pattern_problems

    why = pattern_problems("localhost", inv)
    assert why is not None and "implicit localhost" in why and "ansible_connection: local" in why


def test_vaulted_become_settings_without_a_password_are_problems_not_crashes(tmp_path: Path) -> None:
    vaulted = "!vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6162\n"
    p = tmp_path / "inv.yml"
    p.write_text(f"all:\n  hosts:\n    a:\n      ansible_become: {vaulted}    b:\n      ansible_become: true\n      ansible_become_password: {vaulted}")
    inv = load_inventories([str(p)])
    assert "ansible-vault" in target_problems(inv.hosts["a"])[0].message
    assert "become password" in target_problems(inv.hosts["b"])[0].message


def test_a_numeric_password_is_still_a_secret(tmp_path: Path) -> None:
    from engine.secrets import Secret

    p = tmp_path / "hosts.ini"
    p.write_text("db1 mysql_password=834291 ansible_ssh_pass=5521\n")
    db1 = load_inventories([str(p)]).hosts["db1"]
    assert isinstance(db1.vars["mysql_password"], Secret) and db1.vars["mysql_password"].reveal() == "834291"
    assert mysql_settings(db1).password == Secret("834291") and ssh_settings(db1).password == Secret("5521")
