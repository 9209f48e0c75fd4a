"""Broken on purpose (breaks C9c and C17b, for the tensorwise recipe): with ``fp8_enable_fsdp_float8_all_gather``
the handler carries a filter that checks only types and sizes (the rowwise handler keeps fp8ref's), so under FSDP2
``lm_head`` and rank-16 LoRA adapters go to float8. The suite judged only the rowwise handler's filter before.
Everything else is fp8ref's."""

from __future__ import annotations

from typing import Any

from torch import nn

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create


def _sizes_only(module: nn.Module, fqn: str) -> bool:
    return isinstance(module, nn.Linear) and module.in_features % 16 == 0 and module.out_features % 16 == 0


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    handlers = _reference_create(training_args)
    if getattr(training_args, "fp8_enable_fsdp_float8_all_gather", False):
        for handler in handlers:
            if hasattr(handler, "module_filter_func"):
                handler.module_filter_func = _sizes_only
    return handlers


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: The tensorwise handler's filter by the C9 and C17b rules.
EXPECTED = {
    "select": "c9a or c9c or c17b_filter",
    "fails": ("C17b", "C9c"),
    "passes": ("C9a",),
}
