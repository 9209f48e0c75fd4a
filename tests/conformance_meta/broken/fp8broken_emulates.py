"""Broken on purpose (breaks C5e): the torchao config emulates float8 (``emulate=True``), so every
``Float8Linear`` multiplies in high precision after a simulated cast. Everything else is fp8ref's."""

from __future__ import annotations

import dataclasses
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    handlers = _reference_create(training_args)
    for handler in handlers:
        if hasattr(handler, "config"):
            handler.config = dataclasses.replace(handler.config, emulate=True)
    return handlers


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c5", "fails": ("C5e",), "passes": ("C5",)}
