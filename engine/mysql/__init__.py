"""Server knowledge shared by actions: introspection (tables, keys, columns), chunk checksums.

Everything here takes an :class:`engine.transport.base.Sql` session and reads
``information_schema`` or the tables themselves; nothing here writes.
"""
