"""Broken on purpose (breaks C16d): under DeepSpeed the Transformer Engine recipe stays where accelerate's DeepSpeed
path does not read it (``te_recipe_handler``), so the forward runs with TE's default ``DelayedScaling`` (amax history
1024) instead of the recipe of C7 that ``create_fp8_kwargs`` built. That is what an implementation does that returns
``TERecipeKwargs`` (C7 allows it) and does nothing more; fp8ref before its C16d fix is one as it stands. Here: fp8ref
with any hand-off of its recipe to ``fp8_recipe_handler`` taken back after each ``Accelerator`` is built; everything
else is fp8ref's."""

from __future__ import annotations

from typing import Any

from _te_recipe_drop import drop_te_recipe_under_deepspeed

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import configure_fp8_environment as _reference_configure
from fp8ref import patch_accelerator_for_fp8 as _reference_patch


def configure_fp8_environment(training_args: Any) -> Any:
    result = _reference_configure(training_args)
    drop_te_recipe_under_deepspeed()
    return result


def patch_accelerator_for_fp8(*args: Any, **kwargs: Any) -> Any:
    result = _reference_patch(*args, **kwargs)
    drop_te_recipe_under_deepspeed()
    return result


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C16d: TE's recipe dropped under DeepSpeed names TE's default amax history.
EXPECTED = {
    "select": "3-path and (c16d or c16c)",
    "fails": ("C16d",),
    "passes": ("C16c",),
    "says": {"C16d": "'amax_history_len': 1024"},
    "children": True,
}
