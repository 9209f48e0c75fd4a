"""Broken on purpose (breaks C12a, C12d): verify takes the Transformer Engine backend on the accelerator for FP8 in
effect and never looks at the layers, so a TE run whose model holds no TE layer trains in bf16 after a quiet
verify (C12a, and C12d's follow-up)."""

from __future__ import annotations

from _verify_kit import VerifyDefect, make_verify

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

verify_fp8_status = make_verify(VerifyDefect(trust_te_backend=True))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12 on Transformer Engine layers (the stand-in TE, on the CPU).
EXPECTED = {
    "select": "c12a_warns_when_no_te or c12b_quiet_when_te or c12d_te",
    "fails": ("C12a", "C12d"),
    "passes": ("C12b",),
}
