"""A conformance suite for FP8 helper modules: its specification is SPEC.md in this package, its clauses are
declared once in clauses.json (read through :mod:`.clauses`)."""
