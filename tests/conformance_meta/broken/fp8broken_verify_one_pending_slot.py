"""Broken on purpose (breaks C12d): the check before ``prepare`` is kept in one process-wide slot on the
``Accelerator`` class, not with the accelerator given to verify: every verify replaces (or clears) it, and
whichever accelerator prepares a model next spends it. Verify on a second accelerator without FP8 loses the first
one's check; an accelerator never given to verify sets it off."""

from __future__ import annotations

from _verify_kit import VerifyDefect, make_verify

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

verify_fp8_status = make_verify(VerifyDefect(follow_up="one-slot"))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12d: two accelerators, a check left pending.
EXPECTED = {
    "select": "c12a or c12d and not trainer",
    "fails": ("C12d",),
    "passes": ("C12a",),
}
