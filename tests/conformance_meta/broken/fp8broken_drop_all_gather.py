"""Broken on purpose (breaks C6): the FSDP float8 all-gather flag is logged and dropped; the recipe
stays rowwise without all-gather. Everything else is fp8ref's."""

from __future__ import annotations

import logging
import types
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    if getattr(training_args, "fp8_enable_fsdp_float8_all_gather", False):
        logging.getLogger(__name__).info("FSDP float8 all-gather optimization requested")
    args = types.SimpleNamespace(
        fp8=getattr(training_args, "fp8", False),
        fp8_backend=getattr(training_args, "fp8_backend", "auto"),
        fp8_enable_fsdp_float8_all_gather=False,
    )
    return _reference_create(args)


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c5 or c6", "fails": ("C6",), "passes": ("C5",)}
