"""Broken on purpose (breaks C12b, C12d): verify counts only torchao ``Float8Linear`` layers as FP8 layers, so a
model whose FP8 layers are Transformer Engine modules looks unconverted: a false alarm on every TE run (C12b, and
C12d's follow-up). Only the GPU tests saw this before the stand-in TE served C12."""

from __future__ import annotations

from _verify_kit import VerifyDefect, make_verify

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

verify_fp8_status = make_verify(VerifyDefect(count_te=False))

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12 on Transformer Engine layers (the stand-in TE, on the CPU).
EXPECTED = {
    "select": "c12a_warns_when_no_te or c12b_quiet_when_te or c12d_te",
    "fails": ("C12b", "C12d"),
    "passes": ("C12a",),
}
