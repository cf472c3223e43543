"""MySQL/MariaDB error numbers → what it means here and what to do next.

Used by the MySQL adapter for every error, so each failing step carries a diagnosis in its
message and in the journal. ``retryable`` marks errors where running the *whole* statement or
chunk again in a new transaction is safe (deadlock, lock wait, lost connection) — never a
partial retry inside a transaction (mydumper PR #1162 lost rows that way).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    errno: int
    name: str
    meaning: str
    next_step: str
    retryable: bool = False
    lost_connection: bool = False

    def hint(self) -> str:
        return f"{self.meaning}; {self.next_step}"


_TABLE: dict[int, Diagnosis] = {}


def _d(errno: int, name: str, meaning: str, next_step: str, **kw: bool) -> None:
    _TABLE[errno] = Diagnosis(errno, name, meaning, next_step, **kw)


# -- access: never retried, the same credentials fail the same way -------------------------
_d(1044, "ER_DBACCESS_DENIED_ERROR", "the account may not use this database",
   "GRANT the needed privileges on it to the host's mysql_user, or use another account (not retryable)")
_d(1045, "ER_ACCESS_DENIED_ERROR", "authentication failed (wrong user, password or client host)",
   "check mysql_user/mysql_password or mysql_option_file for this host (not retryable)")
_d(1142, "ER_TABLEACCESS_DENIED_ERROR", "the account lacks a table privilege", "GRANT it or use another account")
_d(1227, "ER_SPECIFIC_ACCESS_DENIED_ERROR", "the statement needs a privilege the account lacks (SUPER, "
   "READ_ONLY ADMIN, CONNECTION ADMIN, ...)", "run it from an administrative account (not retryable)")
_d(1095, "ER_KILL_DENIED_ERROR", "the account may not kill that connection",
   "grant CONNECTION ADMIN (MariaDB/MySQL 8) or PROCESS+SUPER, or list that user in except_users")
# -- schema and data ---------------------------------------------------------------------
_d(1049, "ER_BAD_DB_ERROR", "the database does not exist", "create it or fix the schema name")
_d(1050, "ER_TABLE_EXISTS_ERROR", "the table already exists",
   "drop or rename it first, or pick a strategy that keeps it (this is not retried)")
_d(1062, "ER_DUP_ENTRY", "a row with the same primary or unique key already exists",
   "choose a conflict strategy (on_conflict: ignore | replace | upsert) or clean the target first")
_d(1064, "ER_PARSE_ERROR", "the SQL does not parse", "fix the statement in the runbook")
_d(1146, "ER_NO_SUCH_TABLE", "the table does not exist",
   "create the schema first or restore parents before children; check the schema and table names")
_d(1451, "ER_ROW_IS_REFERENCED_2", "a parent row is still referenced by a child row (on MariaDB also: "
   "dropping a parent table)", "delete or restore the children first (FK order), or load with "
   "foreign_key_checks=0 and verify orphans afterwards")
_d(1452, "ER_NO_REFERENCED_ROW_2", "a child row points to a parent that does not exist",
   "restore the parent table first (FK order) or verify orphans after a foreign_key_checks=0 load")
# MySQL 8 only; MariaDB reports the same situation as 1451.
_d(3730, "ER_FK_CANNOT_DROP_PARENT", "a table referenced by a foreign key cannot be dropped",
   "drop the child tables (or their constraints) first, or set foreign_key_checks=0 for the session")
# -- space and size ----------------------------------------------------------------------
_d(1114, "ER_RECORD_FILE_FULL", "the table is full: the disk, an InnoDB size cap, or "
   "max_heap_table_size for a MEMORY/temporary table", "stop; free space on the datadir's filesystem "
   "(run disk_space) or raise the size limit, then resume (not retryable as is)")
_d(1021, "ER_DISK_FULL", "the server's disk is full and it is waiting for space",
   "free space on the datadir/tmpdir filesystem (run disk_space), then resume")
_d(1153, "ER_NET_PACKET_TOO_LARGE", "a statement or row is larger than the server's max_allowed_packet",
   "raise max_allowed_packet (SET GLOBAL, then reconnect: the session value is read-only) or use "
   "smaller batches", lost_connection=True)
_d(1148, "ER_NOT_ALLOWED_COMMAND", "LOAD DATA LOCAL is disabled", "enable local_infile on server and client")
# -- locks: retry the WHOLE transaction (mydumper PR #1162) ----------------------------------
_d(1205, "ER_LOCK_WAIT_TIMEOUT", "a lock wait timed out (innodb_lock_wait_timeout or lock_wait_timeout)",
   "retry the whole transaction; find the blocker in the processlist / information_schema.INNODB_TRX",
   retryable=True)
_d(1213, "ER_LOCK_DEADLOCK", "a deadlock rolled the transaction back",
   "retry the whole transaction, with fewer parallel writers (SHOW ENGINE INNODB STATUS shows the cycle)",
   retryable=True)
# -- fencing -------------------------------------------------------------------------------
_d(1290, "ER_OPTION_PREVENTS_STATEMENT", "the server runs with read_only/super_read_only (writes are fenced)",
   "expected after stop_writes; run resume_writes when the restore is verified, or write from an account "
   "with READ_ONLY ADMIN (not retryable)")
# -- connection ----------------------------------------------------------------------------
_d(2003, "CR_CONN_HOST_ERROR", "cannot connect to the MySQL server", "is it running and listening on that host and port?", lost_connection=True)
_d(2006, "CR_SERVER_GONE_ERROR", "the server closed the connection (restart, KILL, wait_timeout, or max_allowed_packet)",
   "reconnect and re-run the whole statement or chunk in a new transaction", retryable=True, lost_connection=True)
_d(2013, "CR_SERVER_LOST", "the connection was lost during the query",
   "reconnect and re-run the whole statement or chunk in a new transaction; check the server's error log", retryable=True, lost_connection=True)
_d(1927, "ER_CONNECTION_KILLED", "the connection was killed", "reconnect; someone ran KILL (or stop_writes)", retryable=True, lost_connection=True)
_d(1317, "ER_QUERY_INTERRUPTED", "the query was interrupted (KILL QUERY or max_statement_time)", "raise the step's timeout or find who killed it")
_d(3024, "ER_QUERY_TIMEOUT", "the query ran past max_execution_time", "raise the step's timeout")
_d(1969, "ER_STATEMENT_TIMEOUT", "the query ran past max_statement_time", "raise the step's timeout")


def diagnose(errno: int | None) -> Diagnosis | None:
    """The table entry for ``errno``, or None for an unknown (or missing) code."""
    if errno is None:
        return None
    return _TABLE.get(errno)


def known_errnos() -> list[int]:
    return sorted(_TABLE)


def is_retryable(errno: int | None) -> bool:
    """True when re-running the whole statement or chunk in a new transaction is safe."""
    diag = diagnose(errno)
    return bool(diag and diag.retryable)
