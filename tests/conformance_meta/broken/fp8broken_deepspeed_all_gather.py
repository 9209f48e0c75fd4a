"""Broken on purpose (breaks C16c): the FSDP float8 all-gather flag is let through under DeepSpeed, so the
run fails late, inside torch (``Couldn't swap Float8Linear.weight``), instead of with a clear ValueError
before the first step. fp8ref with its two DeepSpeed checks (configure, patched Accelerator) switched off."""

from __future__ import annotations

import types
from typing import Any

import fp8ref.patch
from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import configure_fp8_environment as _reference_configure


def configure_fp8_environment(training_args: Any) -> Any:
    # Only the three FP8 attributes reach fp8ref: it never sees the DeepSpeed config of the arguments.
    args = types.SimpleNamespace(
        fp8=getattr(training_args, "fp8", False),
        fp8_backend=getattr(training_args, "fp8_backend", "auto"),
        fp8_enable_fsdp_float8_all_gather=getattr(training_args, "fp8_enable_fsdp_float8_all_gather", False),
    )
    return _reference_configure(args)


def _let_through(arguments: dict[str, Any], handlers: list[Any]) -> None:
    """The seed's behaviour: no check of the all-gather flag against DeepSpeed."""


fp8ref.patch._refuse_all_gather_under_deepspeed = _let_through  # type: ignore[attr-defined]

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: Only the all-gather runs of C16 (the suite starts no training run when only C16c is selected).
EXPECTED = {
    "select": "c16c",
    "fails": ("C16c",),
    "children": True,
}
