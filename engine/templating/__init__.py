"""Sandboxed Jinja2 (StrictUndefined, native types) and SQL rendering (bound values, quoted identifiers)."""
