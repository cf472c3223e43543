"""The built-in actions. Importing this package registers every one of them."""

from engine.actions import (  # noqa: F401
    assert_,
    disk_space,
    innodb_recovery,
    mysql_facts,
    mysql_service,
    pause,
    set_fact,
    shell,
    snapshot,
    sql,
    stop_writes,
    wait_for,
)
