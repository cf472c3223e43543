"""Server knowledge shared by actions: SQL text, identity, snapshot manifest, error diagnosis,
introspection (tables, keys, columns), chunk checksums, the dump reader, the target schema and its
comparison with a dump (``target``), and the opening of a dump file (``dumpsource``)."""
