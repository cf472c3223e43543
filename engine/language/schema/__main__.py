"""``python -m engine.language.schema`` rewrites the published JSON Schema files."""

from engine.language.schema import write_files

write_files()
