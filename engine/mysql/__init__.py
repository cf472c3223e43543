"""Server knowledge shared by actions: the dump reader (``dumpfile``), introspection of a
target schema and schema comparison (``target``), and the restore's opening of a dump file
(``dumpsource``)."""
