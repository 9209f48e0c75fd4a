"""Broken on purpose (for the blocked meta-tests): ``create_fp8_kwargs`` crashes with a ``KeyError`` when the FSDP
float8 all-gather flag is set (a recipe table without the tensorwise entry). That breaks C6, and the exception its
own code raises inside C11's tensorwise run and C15's set-up is a failure of C11 and C15, never a block: C6 being
broken too does not make it C6's business. Everything else is fp8ref's."""

from __future__ import annotations

from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create

_RECIPES = {False: "rowwise"}


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    if getattr(training_args, "fp8", False):
        recipe = _RECIPES[bool(getattr(training_args, "fp8_enable_fsdp_float8_all_gather", False))]  # KeyError: True
        assert recipe == "rowwise"
    return _reference_create(training_args)
