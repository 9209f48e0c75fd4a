"""Broken on purpose (breaks C13b): the patch keeps an explicit torchao handler (the same object, so
an identity check passes) but gives it the implementation's module filter "so that the head and LoRA rules always
apply": the caller's filter is lost."""

from __future__ import annotations

from _patch_kit import PatchDefect, patch_functions

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

# after the star import, which brings fp8ref's
configure_fp8_environment, patch_accelerator_for_fp8 = patch_functions(PatchDefect(retune_explicit=True))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C13: an explicit handler kept unchanged.
EXPECTED = {
    "select": "c13a or c13b",
    "fails": ("C13b",),
    "passes": ("C13a",),
}
