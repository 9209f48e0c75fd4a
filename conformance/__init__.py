"""A conformance suite for FP8 helper modules (see CONTRACT.md, clauses C1..C15, G1..G4)."""
