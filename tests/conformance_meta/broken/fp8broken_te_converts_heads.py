"""Broken on purpose (breaks G2, G3, C13a): the patch's Transformer Engine conversion no longer stops at an
odd-sized layer, but it converts every layer whose sizes are divisible by 16, heads too (``lm_head`` in TE): the
filter's name rules are not applied."""

from __future__ import annotations

from _patch_kit import PatchDefect, patch_functions

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

# after the star import, which brings fp8ref's
configure_fp8_environment, patch_accelerator_for_fp8 = patch_functions(PatchDefect(te_names=False))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: Two-sided TE conversion (G2, G3, C13a).
EXPECTED = {
    "select": "c13a_te or test_g2 or test_g3",
    "fails": ("C13a", "G2/cpu", "G3/cpu"),
}
