"""The mysqldump / mariadb-dump reader that ``restore``, ``verify`` and ``disk_space`` share.

``reader`` (statements of a dump, classified, in file order), ``split`` (the byte tokenizer),
``classify``, ``types``, ``rows`` (row counts and tuples of a data statement), ``ddl`` (CREATE
TABLE parsed), ``scan`` (the whole-file check before any write), ``source`` (opening a dump on
a host). Import from this package::

    from engine.mysql.dump import DumpReader, Kind, count_rows, scan_dump
"""

from engine.mysql.dump.classify import UNSAFE_CHARSETS, has_client_command, head_of, unquote
from engine.mysql.dump.ddl import ColumnDef, ForeignKey, TableDef, parse_create_table
from engine.mysql.dump.reader import DumpReader
from engine.mysql.dump.rows import count_rows, iter_rows
from engine.mysql.dump.scan import DumpScan, DumpSize, TableScan, measure_dump, scan_dump
from engine.mysql.dump.split import DumpError
from engine.mysql.dump.types import DumpHeader, Kind, Statement

__all__ = [
    "UNSAFE_CHARSETS",
    "ColumnDef",
    "DumpError",
    "DumpHeader",
    "DumpReader",
    "DumpScan",
    "DumpSize",
    "ForeignKey",
    "Kind",
    "Statement",
    "TableDef",
    "TableScan",
    "count_rows",
    "has_client_command",
    "head_of",
    "iter_rows",
    "measure_dump",
    "parse_create_table",
    "scan_dump",
    "unquote",
]
