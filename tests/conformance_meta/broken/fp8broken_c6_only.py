"""Broken on purpose, in C6 alone (for the blocked meta-tests): the FSDP float8 all-gather flag is logged and
dropped, consistently. ``create_fp8_kwargs`` builds the rowwise recipe without all-gather whatever the flag, and the
patch injects that same handler (so C13a still holds: the patch injects what ``create_fp8_kwargs`` builds). The
environment still follows the flag (C8c). Everything else is fp8ref's. C11's tensorwise numerics and C15 cannot be
judged then: they are blocked by C6."""

from __future__ import annotations

import os
import types
from typing import Any

import fp8broken_drop_all_gather as _dropped

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import patch_accelerator_for_fp8 as _reference_patch

create_fp8_kwargs = _dropped.create_fp8_kwargs  # the flag logged and dropped: C6's defect


def patch_accelerator_for_fp8(*args: Any, **kwargs: Any) -> None:
    """fp8ref's patch, given the request that configure wrote, with the flag dropped (as create drops it)."""
    backend = {"AO": "torchao", "TE": "te"}.get(os.environ.get("ACCELERATE_FP8_BACKEND", "").upper(), "auto")
    request = types.SimpleNamespace(
        fp8=os.environ.get("ACCELERATE_MIXED_PRECISION", "").lower() == "fp8",
        fp8_backend=backend,
        fp8_enable_fsdp_float8_all_gather=False,
    )
    _reference_patch(request)
