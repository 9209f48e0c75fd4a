"""Broken on purpose (breaks C12e): verify never says that torchao's float8 layers run eagerly, so a run without
``torch.compile`` is reported in effect while it trains slower than bf16. fp8ref's verify with every record that
names ``torch.compile`` dropped; the other four functions are fp8ref's."""

from __future__ import annotations

from typing import Any

from _c12e_notice import silence_fp8ref_compile_notices

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import verify_fp8_status as _reference_verify


def verify_fp8_status(accelerator: Any, training_args: Any) -> Any:
    silence_fp8ref_compile_notices()
    return _reference_verify(accelerator, training_args)
