"""engine.mysql.recovery_log over real error-log excerpts of each server version (tests/data/recovery_logs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.mysql.recovery_log import last_start, parse_line, parse_text
from engine.mysql.recovery_state import RecoveryState

CORPUS = Path(__file__).resolve().parents[1] / "data" / "recovery_logs"


def state_of(name: str) -> RecoveryState:
    text = (CORPUS / name).read_text()
    return RecoveryState().feed_all(parse_text(text[last_start(text):]))


# name: (checkpoint_lsn, recovered_to_lsn, transactions to roll back, rolled back trx ids, phases)
RECOVERED = {
    "mariadb-10.11-crash-rollback.log": (49030832, 95493112, 1, [27], ["analysis", "redo", "undo"]),
    "mariadb-10.11-crash-multibatch.log": (332700994, 406391210, 1, [38], ["analysis", "redo", "undo"]),
    "mariadb-10.6-crash.log": (868446261, 868468759, 2, [3268671, 3268675], ["analysis", "redo", "undo"]),
    "mariadb-10.4-crash.log": (300288, 2154016, None, [], ["analysis", "redo"]),
    "mysql-5.7-crash.log": (66876412022, 66982370956, 1, [97054462], ["analysis", "redo", "undo"]),
    "mysql-8.0-crash.log": (27517178, 30394287, None, [46339], ["analysis", "redo", "undo"]),
}


@pytest.mark.parametrize("name", sorted(RECOVERED))
def test_a_crash_recovery_is_read_phase_by_phase(name: str) -> None:
    ckpt, lsn, trx, rolled_back, phases = RECOVERED[name]
    st = state_of(name)
    assert st.crashed and st.ready and st.fatal is None
    assert st.phase == "ready"
    assert st.checkpoint_lsn == ckpt
    assert st.recovered_to_lsn == lsn
    assert st.transactions_to_roll_back == trx
    assert st.rolled_back == rolled_back
    listed = st.phase_list()
    assert [p["name"] for p in listed] == phases
    for p in listed:  # every phase closed, in time order
        assert p["ended"] is not None and p["seconds"] is not None and p["started"] <= p["ended"]
    starts = [p["started"] for p in listed]
    assert starts == sorted(starts)


def test_the_undo_phase_outlives_ready_for_connections() -> None:
    """MariaDB rolls back in the background: ready comes first, the undo phase ends 2 s later."""
    text = (CORPUS / "mariadb-10.11-crash-rollback.log").read_text()
    cut = text.index("InnoDB: Rolled back recovered transaction")
    partial = RecoveryState().feed_all(parse_text(text[last_start(text):cut]))
    assert partial.ready and partial.rollback_pending and partial.phase == "undo"
    full = state_of("mariadb-10.11-crash-rollback.log")
    assert not full.rollback_pending and full.phases["undo"].seconds == 2.0
    assert full.rows_to_undo == 313178


def test_last_start_skips_the_run_that_crashed() -> None:
    text = (CORPUS / "mariadb-10.11-crash-rollback.log").read_text()
    off = last_start(text)
    assert off > 0 and text[off:].startswith("2026-11-30  4:41:11 0 [Note] Starting MariaDB")
    whole = RecoveryState().feed_all(parse_text(text))  # a START resets the state
    assert whole.checkpoint_lsn == 49030832


def test_redo_progress_from_lsns_and_from_percent() -> None:
    text = (CORPUS / "mariadb-10.11-crash-multibatch.log").read_text()
    cut = text.index("To recover: LSN 370307875")  # part way through the batches
    st = RecoveryState().feed_all(parse_text(text[:cut]))
    assert st.phase == "redo"
    frac = st.fraction("redo")
    assert frac is not None and 0.4 < frac < 0.6  # (367174353-332700994)/(406391210-332700994)
    text = (CORPUS / "mysql-8.0-crash.log").read_text()
    st = RecoveryState().feed_all(parse_text(text[: text.index("[MY-012533] [InnoDB] 50%")]))
    assert st.phase == "redo" and st.fraction("redo") == 0.4
    text = (CORPUS / "mysql-5.7-crash.log").read_text()
    st = RecoveryState().feed_all(parse_text(text[: text.index("Apply batch completed")]))
    assert st.redo_percent == 99  # the last number of the growing "Progress in percent" line


FATAL = {
    "mariadb-10.11-fatal-missing-tablespace.log": ("missing_tablespace", "Tablespace 6 was not found at ./t/u.ibd."),
    "mariadb-10.11-fatal-redo-truncated.log": ("redo_log_corrupt", "The log was only scanned up to 899999984"),
    "mariadb-10.11-fatal-missing-redo.log": ("missing_redo_log", "File ./ib_logfile0 was not found"),
    "mariadb-10.11-fatal-redo-header.log": ("redo_log_corrupt", "Invalid log header checksum"),
    "mariadb-10.11-fatal-lsn-future.log": ("lsn_in_future", "log sequence number 984866840 is in the future!"),
    "mysql-5.5-fatal-lsn-future.log": ("lsn_in_future", "is in the future! Current system log sequence number 492353894193."),
    "mysql-8.4-fatal-lsn-future.log": ("lsn_in_future", "Page [page id: space=4294967279, page number=260]"),
    "mysql-9.1-fatal-missing-redo.log": ("missing_redo_log", "Missing redo log file ./#innodb_redo/#ib_redo8"),
}


@pytest.mark.parametrize("name", sorted(FATAL))
def test_a_fatal_line_is_named_with_a_diagnosis(name: str) -> None:
    kind, text = FATAL[name]
    st = state_of(name)
    assert st.phase == "failed" and not st.ready
    assert st.fatal is not None and st.fatal.fatal is not None
    assert st.fatal.fatal.kind == kind
    assert text in st.fatal.line.text
    assert st.fatal.fatal.diagnosis and st.fatal.fatal.next_step


def test_the_cause_wins_over_the_generic_abort() -> None:
    st = state_of("mariadb-10.11-fatal-missing-tablespace.log")
    assert st.aborted is not None and st.aborted.fatal is not None and st.aborted.fatal.terminal
    assert st.fatal is not None and st.fatal.fatal is not None and st.fatal.fatal.kind == "missing_tablespace"
    assert any("innodb_force_recovery=1" in h for h in st.hints)


def test_a_glued_line_is_split_and_a_note_is_never_fatal() -> None:
    events = list(parse_text("2026-11-30  4:42:23 0 [ERROR] Aborting2026-11-30  4:42:22 0 [Warning] Could not increase number of max_open_files\n"))
    assert [e.kind for e in events] == ["fatal"]
    assert next(parse_text("2026-11-30  4:42:23 0 [Note] InnoDB: Set innodb_force_recovery=1 to ignore corrupted pages.\n")).kind == "hint"
    assert not list(parse_text("2026-11-30  4:42:23 0 [Warning] InnoDB: Page 5 is corrupted\n"))


def test_header_forms() -> None:
    maria = parse_line("2026-11-30  4:41:11 0 [Note] InnoDB: To recover: 2635 pages")
    assert maria.level == "Note" and maria.innodb and maria.text == "To recover: 2635 pages" and maria.ts is not None
    mysql = parse_line("2023-06-26T10:20:02.359130+08:00 0 [Note] [MY-013883] [InnoDB] The latest found checkpoint is at lsn = 1")
    assert mysql.code == "MY-013883" and mysql.innodb and mysql.ts is not None and mysql.ts.utcoffset() is not None
    old = parse_line("181126 10:13:32 [ERROR] Aborting")
    assert old.level == "ERROR" and old.text == "Aborting" and old.ts is not None and old.ts.year == 2018
    bare = parse_line("InnoDB: Progress in percent: 5 6 7")
    assert bare.ts is None and bare.text == "Progress in percent: 5 6 7"


def test_mysql_x_plugin_is_not_the_server_being_ready() -> None:
    text = (CORPUS / "mysql-8.0-crash.log").read_text()
    cut = text.index("[MY-010931]")
    st = RecoveryState().feed_all(parse_text(text[: text.rindex("\n", 0, cut) + 1]))
    assert "X Plugin ready for connections" in text[:cut] and not st.ready
    assert state_of("mysql-8.0-crash.log").ready
