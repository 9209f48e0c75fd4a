"""Broken on purpose (breaks C12c): verify counts every torchao ``Float8Linear`` as FP8 in effect, even one
whose config emulates float8. fp8ref with its emulation test switched off; everything else is fp8ref's."""

from __future__ import annotations

import fp8ref.verify.layers
from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)

fp8ref.verify.layers.emulates_float8 = lambda module: False

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c12a or c12b or c12c or c5e", "fails": ("C12c",), "passes": ("C12a", "C12b", "C5e")}
