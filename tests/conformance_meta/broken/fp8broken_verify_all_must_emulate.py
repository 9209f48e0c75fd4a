"""Broken on purpose (breaks C12c): verify reports emulation only when every FP8 layer emulates, so a model in
which some layers emulate (converted with another config, by the user or by the handler) passes as FP8 in effect."""

from __future__ import annotations

from _verify_kit import VerifyDefect, make_verify

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

verify_fp8_status = make_verify(VerifyDefect(emulation="all"))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12c: some layers emulate; the user converted the emulating layers.
EXPECTED = {
    "select": "c12a or c12c",
    "fails": ("C12c",),
    "passes": ("C12a",),
}
