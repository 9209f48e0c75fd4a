"""Broken on purpose (breaks C12d): verify warns whenever no model is prepared, although ``fp8_enabled`` is
true and FP8 may still come into effect (the false alarm at the trainers' call site, on every run).
Otherwise fp8ref's verify; the other four functions are fp8ref's."""

from __future__ import annotations

import logging
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import verify_fp8_status as _reference_verify


def verify_fp8_status(accelerator: Any, training_args: Any) -> Any:
    if getattr(training_args, "fp8", False) and not getattr(accelerator, "_models", None):
        logging.getLogger(__name__).warning("FP8 training was requested but is NOT in effect: no prepared model")
        return None
    return _reference_verify(accelerator, training_args)


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c12a or c12b or c12d and not trainer", "fails": ("C12d",), "passes": ("C12a", "C12b")}
