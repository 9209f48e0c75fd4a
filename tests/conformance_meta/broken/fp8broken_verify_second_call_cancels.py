"""Broken on purpose (breaks C12d): a second verify before ``prepare`` takes the pending check back
(meant as "one check, not two", it removes the first and adds none), so after two verifies no check follows the
next ``prepare``."""

from __future__ import annotations

from _verify_kit import VerifyDefect, make_verify

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

verify_fp8_status = make_verify(VerifyDefect(follow_up="second-call-cancels"))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12d: two verifies before prepare.
EXPECTED = {
    "select": "c12a or c12d and not trainer",
    "fails": ("C12d",),
    "passes": ("C12a",),
}
