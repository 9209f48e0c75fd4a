"""Broken on purpose (breaks C17b): the module filter knows heads and sizes but not LoRA adapters, so at rank
16 (adapter dimensions divisible by 16) the ``lora_A``/``lora_B`` layers are converted to float8 as well.
Everything else is fp8ref's."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch.nn as nn

import fp8ref.patch
from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import HEAD_AND_EMBEDDING_NAMES
from fp8ref import create_fp8_kwargs as _reference_create


def adapter_blind_filter(module: Any, fqn: str) -> bool:
    """C9 without the adapter rule: type, divisibility by 16, and the last component's head names."""
    if not isinstance(module, nn.Linear) or module.in_features % 16 or module.out_features % 16:
        return False
    return fqn.rsplit(".", 1)[-1] not in HEAD_AND_EMBEDDING_NAMES


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    handlers = _reference_create(training_args)
    return [
        dataclasses.replace(handler, module_filter_func=adapter_blind_filter)
        if hasattr(handler, "module_filter_func")
        else handler
        for handler in handlers
    ]


def _with_adapter_blind_filter(build: Any) -> Any:
    def build_fp8_handler(settings: Any) -> Any:
        handler = build(settings)
        if hasattr(handler, "module_filter_func"):
            return dataclasses.replace(handler, module_filter_func=adapter_blind_filter)
        return handler

    return build_fp8_handler


# The patched Accelerator (what the Trainer uses) gets the same adapter-blind filter.
fp8ref.patch.build_fp8_handler = _with_adapter_blind_filter(fp8ref.patch.build_fp8_handler)  # type: ignore[attr-defined]

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: The filter tests of C17b, and C9e on the same filter (fast: no training run).
EXPECTED = {
    "select": "c17b_filter or c17b_property or c9e",
    "fails": ("C17b",),
    "passes": ("C9e",),
}
