"""Running a runbook: runner (header, lock, play, recap), play (stages x hosts x forks), executor
(one step on one host), recovery (resume policy), rollback."""
