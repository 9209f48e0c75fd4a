"""Stand-in transformer_engine of the fp8ref conformance suite: TE's FP8 state and ``fp8_autocast``, no kernels.

``fp8_autocast`` records its arguments and, as TE's does, makes its recipe the one in effect for the block
(``FP8GlobalStateManager``; the innermost block wins, the previous state comes back on exit); the layers compute
in high precision whatever it says.
"""

import contextlib

from transformer_engine.common.recipe import DelayedScaling

__fp8_conformance_standin__ = True

#: The arguments of every ``fp8_autocast`` entered, in order (the suite's CPU twins read it).
AUTOCAST_CALLS = []


def check_fp8_support():
    return False, "conformance stand-in: no FP8 kernels"


def check_mxfp8_support():
    return False, "conformance stand-in: no MXFP8"


def get_default_fp8_recipe():
    return DelayedScaling()


class FP8GlobalStateManager:
    """The part of TE's class that says whether FP8 is on and with which recipe, where a layer runs."""

    FP8_ENABLED = False
    FP8_RECIPE = None

    @classmethod
    def is_fp8_enabled(cls):
        return cls.FP8_ENABLED

    @classmethod
    def get_fp8_recipe(cls):
        return cls.FP8_RECIPE if cls.FP8_RECIPE is not None else get_default_fp8_recipe()


@contextlib.contextmanager
def fp8_autocast(enabled=True, calibrating=False, fp8_recipe=None, fp8_group=None, **kwargs):
    """Records its arguments and puts ``fp8_recipe`` (TE's default ``DelayedScaling()`` when none is given) in
    effect for the block; the block runs unchanged (no FP8)."""
    AUTOCAST_CALLS.append(dict(enabled=enabled, calibrating=calibrating, fp8_recipe=fp8_recipe, **kwargs))
    saved = (FP8GlobalStateManager.FP8_ENABLED, FP8GlobalStateManager.FP8_RECIPE)
    FP8GlobalStateManager.FP8_ENABLED = enabled
    FP8GlobalStateManager.FP8_RECIPE = fp8_recipe if fp8_recipe is not None else get_default_fp8_recipe()
    try:
        yield
    finally:
        FP8GlobalStateManager.FP8_ENABLED, FP8GlobalStateManager.FP8_RECIPE = saved
