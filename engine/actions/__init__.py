"""The built-in actions. Importing this package registers every one of them."""

from engine.actions import (  # noqa: F401
    assert_,
    disk_space,
    mysql_facts,
    pause,
    restore,
    set_fact,
    shell,
    snapshot,
    sql,
    stop_writes,
    wait_for,
)
