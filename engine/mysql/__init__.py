"""Server knowledge shared by actions: SQL text, identity, snapshot manifest, error diagnosis, the dump
reader, introspection (tables, keys, columns) and chunk checksums."""
