"""Broken on purpose (breaks C13b): the patch looks for an explicit FP8 handler only in a list: in a tuple it
sees none and adds its own beside the caller's (accelerate's ``ValueError`` for two torchao handlers, or two FP8
handlers of two backends)."""

from __future__ import annotations

from _patch_kit import PatchDefect, patch_functions

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

# after the star import, which brings fp8ref's
configure_fp8_environment, patch_accelerator_for_fp8 = patch_functions(PatchDefect(tuples="blind"))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C13: handlers in a tuple.
EXPECTED = {"select": "c13a or c13b", "fails": ("C13b",), "passes": ("C13a",)}
