"""The fence's types and their journal forms (STYLE habit 12), account patterns, session names."""

from __future__ import annotations

from engine.mysql.binlog.position import BinlogPosition
from engine.mysql.fence import FenceRecord, FenceState, FenceUndo, Session
from engine.mysql.fence_accounts import Account, match_accounts


def test_undo_round_trips_through_the_journal_form() -> None:
    undo = FenceUndo(state=FenceState(False, None), unlock=(Account("app", "%"), Account("a@b", "10.0.0.%")), replica_sql=True)
    assert FenceUndo.from_dict(undo.to_dict()) == undo
    assert undo.to_dict()["unlock"] == ["app@%", "a@b@10.0.0.%"]
    assert FenceUndo.from_dict({"record": "fence", "state": None, "unlock": [], "lock": [], "replica_sql": None}).empty


def test_an_older_journals_undo_record_still_reads() -> None:
    """Before the types, stop_writes journaled the previous state as its undo record."""
    old = {"read_only": False, "super_read_only": None}
    assert FenceUndo.from_dict(old) == FenceUndo(state=FenceState(False, None))
    assert FenceUndo.from_dict({"read_only": True, "super_read_only": False}).state == FenceState(True, False)
    assert FenceUndo.from_dict(None).empty and FenceUndo.from_dict("junk").empty


def test_an_earlier_attempts_undo_keeps_the_earliest_state_and_every_account() -> None:
    earlier = FenceUndo(state=FenceState(False), unlock=(Account("app", "%"),))
    now = FenceUndo(state=None, unlock=(Account("app", "%"), Account("cron", "%")))  # fenced by the earlier attempt
    both = now.plus(earlier)
    assert both.state == FenceState(False) and both.unlock == (Account("app", "%"), Account("cron", "%"))


def test_record_round_trips_and_undoes_the_whole_runs_fence() -> None:
    rec = FenceRecord(previous=FenceState(True, False), locked=(Account("app", "%"),), froze=True,
                      binlog=BinlogPosition("binlog.000003", 1234, "0-1-57"), killed=("app@10.0.0.5",))
    assert FenceRecord.from_dict(rec.to_dict()) == rec
    assert rec.undo() == FenceUndo(state=FenceState(True, False), unlock=(Account("app", "%"),), replica_sql=True)
    assert FenceRecord.from_dict(None) is None and FenceRecord.from_dict({"locked": []}) is None
    more = rec.adding((Account("app", "%"), Account("cron", "%")), froze=False)
    assert more.locked == (Account("app", "%"), Account("cron", "%")) and more.froze


def test_undoing_a_fence_takes_its_part_of_the_runs_record_away() -> None:
    """The undo of the stop_writes that fenced (its undo puts the state before back) ends the
    run's fence: no record. A later stop_writes of the same run (the server already fenced)
    takes away only what it added: its accounts, its freeze."""
    app, cron = Account("app", "%"), Account("cron", "%")
    rec = FenceRecord(previous=FenceState(False), locked=(app, cron), froze=True)
    assert rec.without(FenceUndo(state=FenceState(False), unlock=(app,))) is None
    later = rec.without(FenceUndo(state=None, unlock=(cron,), replica_sql=True))
    assert later == FenceRecord(previous=FenceState(False), locked=(app,), froze=False)
    assert rec.without(FenceUndo(state=None, unlock=())) == rec


def test_account_patterns() -> None:
    accounts = [Account("app", "%"), Account("app", "10.0.0.%"), Account("app_ro", "%"), Account("report", "%"),
                Account("mariadb.sys", "localhost"), Account("root", "localhost")]
    assert match_accounts(["app"], accounts) == ([Account("app", "%"), Account("app", "10.0.0.%")], [])
    assert match_accounts(["app@%"], accounts) == ([Account("app", "%")], [])  # that exact account, not every host
    assert match_accounts(["app*"], accounts)[0] == [Account("app", "%"), Account("app", "10.0.0.%"), Account("app_ro", "%")]
    assert match_accounts(["app@10.*"], accounts)[0] == [Account("app", "10.0.0.%")]
    assert match_accounts(["%"], accounts)[0] == [a for a in sorted(accounts) if a.user != "mariadb.sys"]
    assert match_accounts(["nobody", "report"], accounts) == ([Account("report", "%")], ["nobody"])
    assert Account.parse("a@b@%") == Account("a@b", "%") and Account("o'k", "%").quoted == "'o''k'@'%'"


def test_session_who_drops_the_client_port() -> None:
    assert Session(1, "app", "10.0.0.5:51234").who == "app@10.0.0.5"
    assert Session(2, "app", "localhost").who == "app@localhost"
    assert Session(3, "app", "::1:5555").who == "app@::1"
