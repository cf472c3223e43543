"""Fuzzing of the validation path: seeded mutations of the project's own runbooks and inventories."""
