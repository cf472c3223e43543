"""MysqlSession against the real MariaDB of the test machine."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pymysql
import pytest

from engine.errors import CommandTimeout, ConnectError, SqlError
from engine.model import MysqlSettings
from engine.secrets import Secret
from engine.transport.mysql import MysqlSession
from tests.sshd import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def session(mysql_settings: MysqlSettings, schema: str) -> Iterator[MysqlSession]:
    s = MysqlSession(replace(mysql_settings, database=schema))
    yield s
    s.close()


def sql_error(session: MysqlSession, sql: str) -> SqlError:
    with pytest.raises(SqlError) as info:
        session.query(sql)
    return info.value


def test_rows_are_mappings_with_column_names(session: MysqlSession) -> None:
    session.query("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    session.query("INSERT INTO t VALUES (%s, %s), (%s, %s)", (1, "a", 2, "b"))
    res = session.query("SELECT id, name FROM t ORDER BY id")
    assert res.columns == ("id", "name")
    assert res.rows == ({"id": 1, "name": "a"}, {"id": 2, "name": "b"})
    assert res.rowcount == 2 and res.returns_rows
    assert session.scalar("SELECT COUNT(*) FROM t WHERE name = %s", ("b",)) == 1


def test_rowcount_of_an_update(session: MysqlSession) -> None:
    session.query("CREATE TABLE t (id INT PRIMARY KEY, n INT)")
    session.query("INSERT INTO t VALUES (1, 0), (2, 0), (3, 5)")
    res = session.query("UPDATE t SET n = n + 1 WHERE n = 0")
    assert res.rowcount == 2
    assert not res.returns_rows and res.rows == ()


def test_percent_without_params_is_left_alone(session: MysqlSession) -> None:
    assert session.query("SELECT 'a%%b' AS s, 'x%' AS t").rows == ({"s": "a%%b", "t": "x%"},)


def test_syntax_error(session: MysqlSession) -> None:
    err = sql_error(session, "SELEC 1")
    assert err.errno == 1064
    assert err.sqlstate == "42000"
    assert err.sql == "SELEC 1"
    assert err.hint and "does not parse" in err.hint
    assert "ERROR 1064 (42000)" in err.render()


def test_missing_table(session: MysqlSession) -> None:
    err = sql_error(session, "SELECT * FROM no_such_table")
    assert err.errno == 1146
    assert err.sqlstate == "42S02"
    assert err.hint and "table does not exist" in err.hint
    assert session.query("SELECT 1 AS ok").rows == ({"ok": 1},)  # the session survives the error


def test_duplicate_key(session: MysqlSession) -> None:
    session.query("CREATE TABLE t (id INT PRIMARY KEY)")
    session.query("INSERT INTO t VALUES (1)")
    err = sql_error(session, "INSERT INTO t VALUES (1)")
    assert err.errno == 1062
    assert err.sqlstate == "23000"
    assert err.hint and "on_conflict" in err.hint


def test_closed_port_is_a_connect_error(mysql_settings: MysqlSettings) -> None:
    port = free_port()
    s = MysqlSession(replace(mysql_settings, port=port, connect_timeout=2))
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port} is unreachable"):
        s.query("SELECT 1")


def test_bad_password_is_a_connect_error(mysql_settings: MysqlSettings, db: pymysql.connections.Connection) -> None:
    user, password = "rbt_pw_user", "right-password-123"
    with db.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
        cur.execute("CREATE USER IF NOT EXISTS %s@'localhost' IDENTIFIED BY %s", (user, password))
    try:
        bad = MysqlSession(replace(mysql_settings, user=user, password=Secret("wrong-password-456")))
        with pytest.raises(ConnectError) as info:
            bad.query("SELECT 1")
        assert "1045" in str(info.value)
        assert "wrong-password-456" not in str(info.value)
        good = MysqlSession(replace(mysql_settings, user=user, password=Secret(password)))
        assert good.scalar("SELECT 1") == 1
        good.close()
    finally:
        with db.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (user,))
            cur.execute("DROP USER IF EXISTS %s@'localhost'", (user,))


def test_option_file(mysql_settings: MysqlSettings, db: pymysql.connections.Connection, tmp_path: Path) -> None:
    # A user only the option file knows (with its password) proves the file is read.
    user, password = "rbt_cnf_user", "cnf-password-789"
    with db.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
    cnf = tmp_path / "my.cnf"
    cnf.write_text(
        f"[client]\nuser={user}\npassword={password}\nhost={mysql_settings.host}\nport={mysql_settings.port}\n"
    )
    s = MysqlSession(MysqlSettings(option_file=str(cnf)))
    try:
        assert s.query("SELECT CURRENT_USER() AS u").rows[0]["u"].startswith(f"{user}@")
    finally:
        s.close()
        with db.cursor() as cur:
            for host in ("127.0.0.1", "localhost"):
                cur.execute("DROP USER IF EXISTS %s@%s", (user, host))


def test_missing_option_file(tmp_path: Path) -> None:
    s = MysqlSession(MysqlSettings(option_file=str(tmp_path / "absent.cnf")))
    with pytest.raises(ConnectError, match="does not exist"):
        s.query("SELECT 1")


def test_timeout_then_reconnect(session: MysqlSession, db: pymysql.connections.Connection) -> None:
    """A statement past its timeout is stopped and the session reconnects. No clock: the
    statement waits for a lock this test holds until the call has returned, so it cannot end
    by itself; a call that waited for it instead of stopping it would never return."""
    first = session.connection_id
    gate = f"rbt_gate_{uuid.uuid4().hex[:12]}"
    with db.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (gate,))
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            session.query("SELECT GET_LOCK(%s, 3600)", (gate,), timeout=0.5)
            outcome.append(None)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    try:
        caller.join(60)  # a guard against a hang, not a timing
        assert not caller.is_alive(), "the session waited for the statement instead of stopping it"
    finally:
        with db.cursor() as cur:
            cur.execute("SELECT RELEASE_LOCK(%s)", (gate,))
        caller.join(60)
    assert isinstance(outcome[0], CommandTimeout) and re.search(r"timeout \(0.5s\)", str(outcome[0])), outcome
    assert session.query("SELECT 1 AS x").rows == ({"x": 1},)
    assert session.connection_id != first


def test_killed_connection_then_next_query_works(session: MysqlSession, db: pymysql.connections.Connection) -> None:
    victim = session.connection_id
    with db.cursor() as cur:
        cur.execute("KILL %s", (victim,))
    err = sql_error(session, "SELECT 1")
    assert err.errno in (2013, 2006)
    assert err.hint and "reconnect" in err.hint
    assert session.query("SELECT 1 AS x").rows == ({"x": 1},)
    assert session.connection_id != victim


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runbook-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_is_used_when_the_server_offers_it_and_not_required_when_it_does_not(tmp_path: Path, session: MysqlSession) -> None:
    """PyMySQL's PREFERRED mode, kept with one shared TLS context (PyMySQL made one per
    connection, loading the CA bundle: ~30 ms of CPU per connection)."""
    from engine.mysql.instance import MariadbInstance

    assert session.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'").rows[0]["Value"] == ""  # the shared server: no TLS
    cert, key = _self_signed(tmp_path)
    inst = MariadbInstance(tmp_path / "db", binlog=False, extra=[f"--ssl-cert={cert}", f"--ssl-key={key}"])
    inst.start()
    try:
        for _ in range(2):  # the second connection reuses the context
            tls = MysqlSession(MysqlSettings(host="127.0.0.1", port=inst.port, user="root"))
            try:
                assert tls.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'").rows[0]["Value"] != ""
            finally:
                tls.close()
    finally:
        inst.stop()


def test_a_sibling_session_reports_its_connections_as_its_source_does(mysql_settings: MysqlSettings) -> None:
    """Every connection the engine opens for a host is journaled through the host session's
    ``on_connect``: an action's own sessions (a snapshot's copy workers, a verify's) are
    siblings of it and must be told the same way, or a resume cannot stop what they left running."""
    from engine.actions.guard import sibling_session

    seen: list[int] = []
    main = MysqlSession(mysql_settings, on_connect=seen.append)
    other = sibling_session(main, database="mysql")
    try:
        main.query("SELECT 1")
        other.query("SELECT 1")
        assert seen == [main.connection_id, other.connection_id]
    finally:
        other.close()
        main.close()
