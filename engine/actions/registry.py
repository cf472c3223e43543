"""Every built-in action by name. Importing this module imports (and so registers) each of them."""

from __future__ import annotations

from engine.actions import (  # noqa: F401
    assert_,
    binlog_find,
    binlog_replay,
    disk_space,
    innodb_recovery,
    mysql_facts,
    mysql_service,
    notify,
    pause,
    replication,
    restore,
    resume_writes,
    set_fact,
    shell,
    snapshot,
    sql,
    stop_writes,
    verify,
    wait_for,
)
from engine.actions.base import REGISTRY, Action


def action_names() -> list[str]:
    return sorted(REGISTRY)


def get_action(name: str) -> type[Action]:
    return REGISTRY[name]
