"""Broken on purpose, in C6 alone (for the blocked meta-tests): the FSDP float8 all-gather flag is logged and
dropped, consistently. ``create_fp8_kwargs`` builds the rowwise recipe without all-gather whatever the flag, and the
patch injects that same handler (so C13a still holds: the patch injects what ``create_fp8_kwargs`` builds). The
environment still follows the flag (C8c). Everything else is fp8ref's. C11's tensorwise numerics and C15 cannot be
judged then: they are blocked by C6."""

from __future__ import annotations

import logging
import os
import types
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create
from fp8ref import patch_accelerator_for_fp8 as _reference_patch


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    if getattr(training_args, "fp8_enable_fsdp_float8_all_gather", False):
        logging.getLogger(__name__).info("FSDP float8 all-gather optimization requested")
    args = types.SimpleNamespace(
        fp8=getattr(training_args, "fp8", False),
        fp8_backend=getattr(training_args, "fp8_backend", "auto"),
        fp8_enable_fsdp_float8_all_gather=False,
    )
    return _reference_create(args)


def patch_accelerator_for_fp8(*args: Any, **kwargs: Any) -> None:
    """fp8ref's patch, given the request that configure wrote, with the flag dropped (as create drops it)."""
    backend = {"AO": "torchao", "TE": "te"}.get(os.environ.get("ACCELERATE_FP8_BACKEND", "").upper(), "auto")
    request = types.SimpleNamespace(
        fp8=os.environ.get("ACCELERATE_MIXED_PRECISION", "").lower() == "fp8",
        fp8_backend=backend,
        fp8_enable_fsdp_float8_all_gather=False,
    )
    _reference_patch(request)
