"""Everything checkable without a host: YAML with positions, JSON Schemas and their messages,
the loader, template and cross checks, extra vars, units (durations, sizes)."""
