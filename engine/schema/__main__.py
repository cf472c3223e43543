"""``python -m engine.schema`` rewrites the published JSON Schema files."""

from engine.schema import write_files

write_files()
