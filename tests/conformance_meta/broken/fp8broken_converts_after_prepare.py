"""Broken on purpose (breaks G4): with torchao, the patch's handler converts nothing and the layers are
converted after ``prepare`` returns, by building new ``Float8Linear`` modules on torch's default device and copying
the weights in: on a GPU machine they stay on the CPU, after accelerate has placed the model on the GPU."""

from __future__ import annotations

from _patch_kit import PatchDefect, patch_functions

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

# after the star import, which brings fp8ref's
configure_fp8_environment, patch_accelerator_for_fp8 = patch_functions(PatchDefect(convert_after_prepare=True))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: G4's device check on the CPU twin.
EXPECTED = {
    "select": "test_g2 or test_g4",
    "fails": ("G4/cpu",),
    "passes": ("G2/cpu",),
}
