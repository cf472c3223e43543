"""Server knowledge shared by actions: introspection of a target schema, schema comparison,
the dump reader (``dumpfile``), and the restore's opening of a dump file (``dumpsource``)."""
