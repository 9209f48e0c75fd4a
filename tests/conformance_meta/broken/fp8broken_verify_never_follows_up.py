"""Broken on purpose (breaks C12d): before any model is prepared, with ``fp8_enabled`` true, verify stays
quiet and never checks the layers afterwards, so a model that ``prepare`` leaves without an FP8 layer goes
unreported. Otherwise fp8ref's verify; the other four functions are fp8ref's."""

from __future__ import annotations

from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import verify_fp8_status as _reference_verify


def verify_fp8_status(accelerator: Any, training_args: Any) -> Any:
    nothing_prepared = not getattr(accelerator, "_models", None)
    if getattr(training_args, "fp8", False) and getattr(accelerator, "fp8_enabled", False) and nothing_prepared:
        return None
    return _reference_verify(accelerator, training_args)


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c12a or c12b or c12d and not trainer", "fails": ("C12d",), "passes": ("C12a", "C12b")}
