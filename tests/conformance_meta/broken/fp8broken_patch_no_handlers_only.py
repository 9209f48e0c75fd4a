"""Broken on purpose (breaks C13a): the Accelerator patch injects the FP8 handler only when the caller
passes no kwargs handlers at all, so the Trainer's ``DistributedDataParallelKwargs`` turns it off.
Its configure, like the seed's, only sets the environment (fp8ref's ``set_fp8_environment``: no patch of its own
there). The other three functions are fp8ref's."""

from __future__ import annotations

import os
import types
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs
from fp8ref.environment import set_fp8_environment

_BACKENDS = {"AO": "torchao", "TE": "te"}


def patch_accelerator_for_fp8() -> None:
    from accelerate import Accelerator

    if getattr(Accelerator, "_fp8broken_patched", False):
        return
    original_init = Accelerator.__init__

    def patched_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("kwargs_handlers"):
            args_ns = types.SimpleNamespace(
                fp8=True,
                fp8_backend=_BACKENDS.get(os.environ.get("ACCELERATE_FP8_BACKEND", ""), "auto"),
                fp8_enable_fsdp_float8_all_gather=os.environ.get("ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER")
                == "true",
            )
            kwargs["kwargs_handlers"] = create_fp8_kwargs(args_ns)
            kwargs["mixed_precision"] = "fp8"
        original_init(self, *args, **kwargs)

    Accelerator.__init__ = patched_init  # type: ignore[method-assign]
    Accelerator._fp8broken_patched = True  # type: ignore[attr-defined]


def configure_fp8_environment(training_args: Any) -> dict[str, str]:
    return set_fp8_environment(training_args)[0]


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c13", "fails": ("C13a",), "passes": ("C13b", "C13c", "C13d", "C13e")}
