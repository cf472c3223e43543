"""The click commands, the one place that maps errors to exit codes, and the lab."""
