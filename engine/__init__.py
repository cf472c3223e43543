"""runbook: declarative, crash-safe runbooks for MySQL and MariaDB disaster recovery."""

__version__ = "0.1.0"
