"""Broken on purpose (breaks C12c): verify judges emulation by the accelerator's torchao handler
(``ao_recipe_handler.config.emulate``) instead of the layers in effect, so emulating layers that the user
converted with torchao before ``prepare`` pass as FP8 in effect."""

from __future__ import annotations

from _verify_kit import VerifyDefect, make_verify

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

verify_fp8_status = make_verify(VerifyDefect(emulation="handler"))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12c: some layers emulate; the user converted the emulating layers.
EXPECTED = {
    "select": "c12a or c12c",
    "fails": ("C12c",),
    "passes": ("C12a",),
}
