"""Broken on purpose (breaks C12c): verify counts every torchao ``Float8Linear`` as FP8 in effect, even one
whose config emulates float8. fp8ref with its emulation test switched off; everything else is fp8ref's."""

from __future__ import annotations

import fp8ref.verify
from fp8ref import (
    configure_fp8_environment,
    create_fp8_kwargs,
    get_fp8_mixed_precision,
    patch_accelerator_for_fp8,
    verify_fp8_status,
)

fp8ref.verify.emulates_float8 = lambda module: False

__all__ = [
    "configure_fp8_environment",
    "create_fp8_kwargs",
    "get_fp8_mixed_precision",
    "patch_accelerator_for_fp8",
    "verify_fp8_status",
]
