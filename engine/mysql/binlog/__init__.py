"""Binlog knowledge shared by the fence, restore, point-in-time recovery and replication.

``position`` holds the one type for "a place in the binlogs" (file/pos and/or GTID) that
crosses layers: ``stop_writes`` registers where the fence took effect, ``restore`` the dump's
coordinates, ``binlog_find`` the events it flags, ``binlog_replay`` where it stopped and
``replication`` a server's executed set.
"""

from engine.mysql.binlog.position import BinlogPosition

__all__ = ["BinlogPosition"]
