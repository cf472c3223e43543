"""MySQL/MariaDB server knowledge shared by actions (the dump reader, DDL parsing, ...)."""
