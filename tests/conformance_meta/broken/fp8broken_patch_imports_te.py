"""Broken on purpose (breaks C13d): the Accelerator patch imports Transformer Engine whatever the
backend, so the torchao path fails where TE is not installed. Everything else is fp8ref's."""

from __future__ import annotations

from typing import Any

from fp8ref import (
    configure_fp8_environment,
    create_fp8_kwargs,
    get_fp8_mixed_precision,
    verify_fp8_status,
)
from fp8ref import patch_accelerator_for_fp8 as _reference_patch

__all__ = [
    "configure_fp8_environment",
    "create_fp8_kwargs",
    "get_fp8_mixed_precision",
    "patch_accelerator_for_fp8",
    "verify_fp8_status",
]


def patch_accelerator_for_fp8(training_args: Any = None) -> None:
    import transformer_engine.pytorch  # noqa: F401  (the seed's unconditional import)

    _reference_patch(training_args)
