"""Server knowledge shared by actions: SQL text (``sqlutil``), error diagnosis, introspection of
tables, keys and columns, chunk checksums, the snapshot manifest, the target schema and its
comparison with a dump (``target``), the dump reader (``dump/``), and InnoDB crash recovery read
from the error log (``recovery_*``, ``error_log``)."""
