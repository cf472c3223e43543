"""stop_writes / resume_writes called as the executor calls them (probe, apply, probe again),
on a private MariaDB (see fence_helpers): the fence itself, killing sessions, lock_accounts,
the registered fields, the privilege check before any change, check mode."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from engine.actions.resume_writes import ResumeWrites
from engine.actions.stop_writes import StopWrites
from engine.errors import ActionError, SqlError
from engine.model import Status
from engine.mysql.diagnosis import diagnose
from engine.mysql.fence import FENCE_KEY, read_fence_state
from engine.run.context import ActionContext
from engine.secrets import Secret
from tests.integration.fence_helpers import Db
from tests.integration.test_dr_actions import ctx_of, run_step

pytestmark = pytest.mark.integration


def make_ctx(db: Db, user: str = "root", password: str = "", run_state: dict[str, Any] | None = None) -> ActionContext:
    vars_: dict[str, Any] = {"mysql_host": db.inst.host, "mysql_port": db.inst.port, "mysql_user": user}
    if password:
        vars_["mysql_password"] = password
    return ctx_of(vars_, run_state=run_state, step_key="s/fence")


def test_fence_blocks_the_application_and_undo_reopens(fence_db: Db) -> None:
    db = fence_db
    app = db.user("app", "GRANT SELECT, INSERT ON shop.* TO {user}")
    conn = db.login(app, database="shop")
    ctx = make_ctx(db)
    args = {"prove_with": {"user": app, "password": Secret("pw")}, "lock_wait_timeout": 5}
    res = run_step(StopWrites, args, ctx)
    assert res.status is Status.CHANGED, res.msg
    assert res.undo == {"record": "fence", "state": {"read_only": False, "super_read_only": None}, "unlock": [], "lock": [],
                        "replica_sql": None}
    assert res.data["proof"]["effective"] and res.data["proof"]["errno"] == 1290
    assert res.data["previous"] == {"read_only": False, "super_read_only": None}
    assert res.data["state"] == {"read_only": True, "super_read_only": None}
    assert not any("own account" in w for w in res.warnings)
    with pytest.raises(pymysql.err.OperationalError) as err:
        conn.cursor().execute("INSERT INTO t VALUES (1, 'x')")
    assert err.value.args[0] == 1290
    assert diagnose(1290).hint()
    again = run_step(StopWrites, args, ctx)
    assert again.status is Status.OK and again.msg == "nothing to do"
    undone = StopWrites(args, ctx).undo(res.undo)
    assert undone.status is Status.CHANGED and db.read_only() == 0
    conn.cursor().execute("INSERT INTO t VALUES (2, 'y')")
    assert StopWrites(args, ctx).undo(res.undo).status is Status.OK  # undo is idempotent too
    conn.close()


def test_kill_sessions_except_listed_and_register_who(fence_db: Db) -> None:
    db = fence_db
    app, keep = db.user("app"), db.user("keep")
    victim, keeper = db.login(app), db.login(keep)
    victim_id, keeper_id = victim.thread_id(), keeper.thread_id()
    ctx = make_ctx(db)
    args = {"kill_connections": True, "only_users": [app, keep], "except_users": [keep]}
    probe = StopWrites(args, ctx).probe()
    assert not probe.done and [s["id"] for s in probe.state["to_kill"]] == [victim_id]
    res = run_step(StopWrites, args, ctx)
    assert res.data["killed"] == [f"{app}@127.0.0.1"]  # user@host, no client port
    assert [s["id"] for s in res.data["sessions_killed"]] == [victim_id]
    assert set(res.data["sessions_killed"][0]) == {"id", "user", "host", "db", "command", "time"}
    with pytest.raises(pymysql.err.OperationalError):
        victim.cursor().execute("SELECT 1")
    with keeper.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        assert cur.fetchone()[0] == keeper_id  # still the same connection
    # The application's pool reconnects at once: a session opened after the fence cannot
    # write, so it is not "left to kill" and the step stays converged.
    pooled = db.login(app)
    assert run_step(StopWrites, args, ctx).msg == "nothing to do"
    # A fresh run (no fence mark yet) does count it.
    assert not StopWrites(args, make_ctx(db)).probe().done
    pooled.close()
    keeper.close()


def test_lock_accounts_true_locks_the_accounts_of_the_sessions_found(fence_db: Db) -> None:
    db = fence_db
    app = db.user("app", "GRANT SELECT ON shop.* TO {user}")
    admin = db.user("dba", "GRANT SUPER, READ_ONLY ADMIN ON *.* TO {user}")
    conns = [db.login(app), db.login(admin)]
    ctx = make_ctx(db)
    res = run_step(StopWrites, {"kill_connections": True, "lock_accounts": True, "only_users": [app, admin]}, ctx)
    assert res.status is Status.CHANGED, res.msg
    assert res.data["locked"] == [f"{app}@%"]
    assert res.data["not_locked"] == [f"{admin}@%"]  # an admin account: maybe the operator's own
    assert any("not locked" in w for w in res.warnings)
    assert db.locked(app) and not db.locked(admin)
    with pytest.raises(pymysql.err.OperationalError) as err:
        db.login(app)
    assert err.value.args[0] == 4151  # ER_ACCOUNT_HAS_BEEN_LOCKED: the pool cannot come back
    StopWrites({}, ctx).undo(res.undo)
    assert not db.locked(app) and db.read_only() == 0
    db.login(app).close()
    for c in conns:
        c.close()


def test_lock_accounts_pattern_that_matches_nothing_changes_nothing(fence_db: Db) -> None:
    db = fence_db
    ctx = make_ctx(db)
    with pytest.raises(ActionError, match=r"lock_accounts: 'no_such_app\*' match no account on db1 \(nothing was changed\)"):
        StopWrites({"lock_accounts": ["no_such_app*"]}, ctx).apply()
    assert db.read_only() == 0


def test_never_locks_the_engines_own_account(fence_db: Db) -> None:
    db = fence_db
    eng = db.user("eng", "GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION")
    ctx = make_ctx(db, user=eng, password="pw")
    res = run_step(StopWrites, {"lock_accounts": [eng]}, ctx)
    assert res.data["locked"] == [] and not db.locked(eng)
    StopWrites({}, ctx).undo(res.undo)


def test_registers_the_binlog_position_where_the_fence_took_effect(fence_db: Db) -> None:
    """The position is the end of the binlog once read_only is on and the sessions are gone:
    an application transaction left open across the fence can never commit after it."""
    db = fence_db
    app = db.user("app", "GRANT SELECT, INSERT ON shop.* TO {user}")
    conn = db.login(app, database="shop")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (10, 'before')")  # committed before the fence
        cur.execute("BEGIN")
        cur.execute("INSERT INTO t VALUES (11, 'open')")  # open across the fence
    # An account read_only does not stop, with a transaction open across the fence: killed,
    # and gone before the position is read, so it cannot commit after it either.
    admin = db.user("dba", "GRANT READ_ONLY ADMIN ON *.* TO {user}", "GRANT SELECT, INSERT ON shop.* TO {user}")
    priv = db.login(admin, database="shop")
    with priv.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO t VALUES (20, 'privileged')")
    ctx = make_ctx(db)
    res = run_step(StopWrites, {"kill_connections": True, "only_users": [app, admin]}, ctx)
    assert sorted(res.data["killed"]) == sorted([f"{app}@127.0.0.1", f"{admin}@127.0.0.1"])
    with pytest.raises(pymysql.err.OperationalError):
        priv.cursor().execute("COMMIT")
    file, pos = db.sql("SHOW MASTER STATUS")[0][:2]
    gtid = db.sql("SELECT @@gtid_binlog_pos")[0][0]
    assert res.data["binlog"] == {"file": file, "pos": pos, "gtid": gtid}
    with pytest.raises(pymysql.err.OperationalError):
        conn.cursor().execute("COMMIT")  # killed: the open transaction rolled back
    assert db.sql("SELECT id FROM shop.t ORDER BY id") == [(10,)]
    # The run's own later writes come after the position.
    db.sql("INSERT INTO shop.t VALUES (12, 'engine')")
    assert db.sql("SHOW MASTER STATUS")[0][1] > pos  # type: ignore[operator]
    # Shared with later steps (resume_writes, a replay's end) for the rest of the run.
    assert ctx.run_state[FENCE_KEY]["db1"]["binlog"] == res.data["binlog"]
    StopWrites({}, ctx).undo(res.undo)


def test_refuses_before_any_change_when_the_engine_could_not_write_under_the_fence(fence_db: Db) -> None:
    """MariaDB 10.11: SUPER no longer writes under read_only (READ_ONLY ADMIN does). An
    engine account without it would fence, then fail at the snapshot with 1290."""
    db = fence_db
    eng = db.user("eng", "GRANT SUPER, PROCESS, CONNECTION ADMIN, BINLOG MONITOR, SELECT ON *.* TO {user}")
    ctx = make_ctx(db, user=eng, password="pw")
    with pytest.raises(ActionError) as err:
        StopWrites({}, ctx).apply()
    assert "nothing was changed" in err.value.message
    assert f"GRANT READ_ONLY ADMIN ON *.* TO '{eng}'@'%'" in err.value.message
    assert db.read_only() == 0
    # A fence-only runbook may say so: then only setting read_only needs the privilege.
    with pytest.raises(ActionError, match="to set read_only it needs READ_ONLY ADMIN"):
        StopWrites({"engine_must_write": False}, ctx).apply()


def test_resume_writes_restores_the_state_before_this_runs_fence(fence_db: Db) -> None:
    db = fence_db
    state: dict[str, Any] = {}
    ctx = make_ctx(db, run_state=state)
    run_step(StopWrites, {}, ctx)
    res = run_step(ResumeWrites, {}, ctx)
    assert res.status is Status.CHANGED and db.read_only() == 0
    assert res.undo == {"record": "fence", "state": {"read_only": True, "super_read_only": None}, "unlock": [], "lock": [],
                        "replica_sql": None}
    assert run_step(ResumeWrites, {}, ctx).msg == "nothing to do"
    explicit = run_step(ResumeWrites, {"to": {"read_only": True}}, ctx)
    assert explicit.status is Status.CHANGED and db.read_only() == 1
    assert ResumeWrites({}, ctx).undo(explicit.undo).status is Status.CHANGED and db.read_only() == 0
    # Without a fence in the run, nothing says what to restore: refused, not guessed.
    with pytest.raises(ActionError, match="this run did not fence db1"):
        ResumeWrites({}, make_ctx(db)).probe()


def test_check_mode_changes_nothing_and_says_who_can_still_write(fence_db: Db) -> None:
    db = fence_db
    admin = db.user("dba", "GRANT READ_ONLY ADMIN ON *.* TO {user}")
    res = StopWrites({"lock_accounts": True}, make_ctx(db)).check()
    assert res.status is Status.CHANGED and "read_only=ON" in res.msg
    assert f"'{admin}'@'%'" in res.data["can_still_write"]
    assert db.read_only() == 0


def test_mark_survives_in_the_notes_so_a_resumed_step_converges(fence_db: Db) -> None:
    db = fence_db
    app = db.user("app")
    first = db.login(app)
    ctx = make_ctx(db)
    run_step(StopWrites, {"kill_connections": True, "only_users": [app]}, ctx)
    later = db.login(app)  # connected after the fence: cannot write, not a target
    resumed = make_ctx(db, run_state=ctx.run_state)
    resumed.notes = dict(ctx.notes)  # what the executor hands a resumed attempt of the same step
    assert StopWrites({"kill_connections": True, "only_users": [app]}, resumed).probe().done
    later.close()
    with pytest.raises(pymysql.err.OperationalError):
        first.cursor().execute("SELECT 1")
    StopWrites({}, ctx).undo(ctx.notes["undo"])
    assert read_fence_state(ctx.sql()).read_only is False
    with pytest.raises(SqlError):
        ctx.sql().query("SELECT * FROM no_such_db.t")


def test_an_older_journals_undo_record_still_reopens(fence_db: Db) -> None:
    """A run fenced by the engine before the types: its undo record was the previous state."""
    db = fence_db
    db.sql("SET GLOBAL read_only = ON")
    ctx = make_ctx(db)
    res = StopWrites(None, ctx).undo({"read_only": False, "super_read_only": None})
    assert res.status is Status.CHANGED and db.read_only() == 0
    # ... and a step of it killed before its outcome: the note held the state it found.
    db.sql("SET GLOBAL read_only = ON")
    ctx.notes = {"previous": {"read_only": False, "super_read_only": None}, "mark": 1}
    found = StopWrites({}, ctx).undo_of_found(StopWrites({}, ctx).probe())
    assert found is not None
    StopWrites(None, ctx).undo(found)
    assert db.read_only() == 0
