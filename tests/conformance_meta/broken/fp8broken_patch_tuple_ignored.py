"""Broken on purpose (breaks C13a): the patch injects its FP8 handler only into handlers passed as a list (or
none); a tuple, which accelerate accepts as well, passes through untouched, so accelerate makes up its own default
handler from ``ACCELERATE_MIXED_PRECISION=fp8``."""

from __future__ import annotations

from _patch_kit import PatchDefect, patch_functions

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

# after the star import, which brings fp8ref's
configure_fp8_environment, patch_accelerator_for_fp8 = patch_functions(PatchDefect(tuples="ignored"))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C13: handlers in a tuple.
EXPECTED = {"select": "c13a or c13b", "fails": ("C13a",), "passes": ("C13b",)}
