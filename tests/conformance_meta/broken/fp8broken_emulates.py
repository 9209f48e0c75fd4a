"""Broken on purpose (breaks C5e): the torchao config emulates float8 (``emulate=True``), so every
``Float8Linear`` multiplies in high precision after a simulated cast. Everything else is fp8ref's."""

from __future__ import annotations

import dataclasses
from typing import Any

from fp8ref import (
    configure_fp8_environment,
    get_fp8_mixed_precision,
    patch_accelerator_for_fp8,
    verify_fp8_status,
)
from fp8ref import create_fp8_kwargs as _reference_create

__all__ = [
    "configure_fp8_environment",
    "create_fp8_kwargs",
    "get_fp8_mixed_precision",
    "patch_accelerator_for_fp8",
    "verify_fp8_status",
]


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    handlers = _reference_create(training_args)
    for handler in handlers:
        if hasattr(handler, "config"):
            handler.config = dataclasses.replace(handler.config, emulate=True)
    return handlers
