"""Why ``accelerator.fp8_enabled`` is false, told apart, each with its fix.

Read only from ``os.environ``, the accelerator, the training arguments and fp8ref's public
:func:`~fp8ref.patch.is_accelerator_patched`: what a user could check by hand.
"""

from __future__ import annotations

import os
from typing import Any

from fp8ref.variables import MIXED_PRECISION_VAR

OFF_NOT_CONFIGURED = "not configured"
OFF_BUILT_BEFORE_CONFIGURE = "accelerator built before configure_fp8_environment"
OFF_EXPLICIT_PRECISION = "explicit mixed_precision"
OFF_BUILT_BEFORE_PATCH = "accelerator built before patch_accelerator_for_fp8"
OFF_UNKNOWN = "fp8 not enabled"

_PATCH_FIX = "call patch_accelerator_for_fp8() before the Accelerator (or the Trainer) is created"


def _patched() -> bool:
    from fp8ref.patch import is_accelerator_patched

    try:
        return is_accelerator_patched()
    except ImportError:  # no accelerate: nothing can have been patched
        return False


def fp8_off_reason(accelerator: Any, training_args: Any) -> tuple[str, str]:
    """``(reason, explanation with its fix)`` for an accelerator whose ``fp8_enabled`` is false."""
    enabled = getattr(accelerator, "fp8_enabled", None)
    head = f"accelerator.fp8_enabled is {enabled!r}"
    accelerator_precision = getattr(accelerator, "mixed_precision", None)
    if accelerator_precision is None:
        return OFF_UNKNOWN, (
            f"{head}: the accelerator was not built with mixed_precision='fp8' (call configure_fp8_environment "
            "and patch_accelerator_for_fp8 before it is created, or pass mixed_precision=get_fp8_mixed_precision(args))"
        )
    precision = str(accelerator_precision)
    environment = os.environ.get(MIXED_PRECISION_VAR)
    patched = _patched()
    if patched and environment == "fp8":
        return OFF_BUILT_BEFORE_CONFIGURE, (
            f"{head}, mixed_precision={precision!r}: the Accelerator was built before configure_fp8_environment "
            f"({MIXED_PRECISION_VAR}=fp8 is set now, and Accelerator.__init__ carries fp8ref's patch, which "
            "configure_fp8_environment or patch_accelerator_for_fp8 installs, so every Accelerator built from now "
            "on is FP8). Fix: call configure_fp8_environment(args) before the Accelerator or the Trainer is created"
        )
    if patched:
        return OFF_BUILT_BEFORE_PATCH, (
            f"{head}, mixed_precision={precision!r}, while Accelerator.__init__ carries fp8ref's patch, which "
            "makes every Accelerator built after it FP8: this one was built before patch_accelerator_for_fp8() "
            "was called. Fix: call it before the Accelerator or the Trainer is created"
        )
    if environment != "fp8":
        return OFF_NOT_CONFIGURED, (
            f"{head}: FP8 was never configured for it ({MIXED_PRECISION_VAR}={environment!r}, "
            f"mixed_precision={precision!r}). Fix: call configure_fp8_environment(args) before the Accelerator "
            "(and a Trainer's TrainingArguments) is created, or pass "
            "mixed_precision=get_fp8_mixed_precision(args), kwargs_handlers=create_fp8_kwargs(args)"
        )
    arguments_precision = getattr(training_args, "mixed_precision", None)
    half = [flag for flag in ("bf16", "fp16") if getattr(training_args, flag, False) is True]
    if arguments_precision is not None and half:
        return OFF_EXPLICIT_PRECISION, (
            f"{head}: {MIXED_PRECISION_VAR}=fp8 is set, but TrainingArguments({half[0]}=True) set "
            f"mixed_precision={arguments_precision!r}, which the Trainer passes to its Accelerator explicitly, and "
            f"an explicit mixed_precision wins over the environment. Fix: {_PATCH_FIX} (its Accelerator then "
            f"runs FP8 whatever mixed_precision it is given), or drop {half[0]}=True"
        )
    if arguments_precision is not None:
        return OFF_BUILT_BEFORE_CONFIGURE, (
            f"{head}: {MIXED_PRECISION_VAR}=fp8 is set now, but the TrainingArguments were created before "
            f"configure_fp8_environment: they read {MIXED_PRECISION_VAR} then, so their "
            f"mixed_precision={arguments_precision!r}, which the Trainer passes to its Accelerator explicitly. "
            "Fix: call configure_fp8_environment(args) before the TrainingArguments are created, or "
            f"{_PATCH_FIX}, or set args.mixed_precision = 'fp8' before the Trainer is created"
        )
    if precision == "no":
        return OFF_BUILT_BEFORE_CONFIGURE, (
            f"{head}: {MIXED_PRECISION_VAR}=fp8 is set now, but the Accelerator runs mixed_precision='no': it was "
            "built before configure_fp8_environment (it read the environment then), or with "
            "mixed_precision='no' passed explicitly. Fix: create it after configure_fp8_environment(args) without "
            "an explicit mixed_precision, or pass mixed_precision=get_fp8_mixed_precision(args), or "
            f"{_PATCH_FIX}"
        )
    return OFF_EXPLICIT_PRECISION, (
        f"{head}: {MIXED_PRECISION_VAR}=fp8 is set, but the Accelerator runs mixed_precision={precision!r}, passed "
        "explicitly (which wins over the environment) or read before configure_fp8_environment set it. Fix: pass "
        f"mixed_precision=get_fp8_mixed_precision(args), or {_PATCH_FIX}"
    )
