"""A conformance suite for FP8 helper modules (its specification: SPEC.md in this package, C0..C17, G1..G5)."""
