"""Broken on purpose (breaks C8b and C8f): sets the seed's ``FP8_BACKEND`` but not
``ACCELERATE_FP8_BACKEND``, the variable accelerate actually reads, and, like the seed, only sets the environment
(fp8ref's ``set_fp8_environment``: no Accelerator patch). Everything else is fp8ref's."""

from __future__ import annotations

import os
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref.environment import set_fp8_environment


def configure_fp8_environment(training_args: Any) -> None:
    set_fp8_environment(training_args)
    if getattr(training_args, "fp8", False):
        os.environ.pop("ACCELERATE_FP8_BACKEND", None)
        os.environ["FP8_BACKEND"] = str(getattr(training_args, "fp8_backend", "auto"))


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c8", "fails": ("C8b", "C8f"), "passes": ("C8a", "C8c", "C8d", "C8e")}
