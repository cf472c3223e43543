"""`python -m engine.cli.main`: the same entry point as the `runbook` console script."""

from engine.cli.main import main

main()
