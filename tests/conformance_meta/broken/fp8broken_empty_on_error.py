"""Broken on purpose (breaks C4, and C3 with it): any error while building the recipe is swallowed
and ``[]`` returned, so FP8 silently turns into bf16. Everything else is fp8ref's."""

from __future__ import annotations

import logging
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    try:
        return _reference_create(training_args)
    except Exception as exc:
        logging.getLogger(__name__).info("Failed to create FP8 configuration: %s", exc)
        return []


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c1_ or c4 or c5", "fails": ("C4",), "passes": ("C1", "C5"), "via_env": True}
