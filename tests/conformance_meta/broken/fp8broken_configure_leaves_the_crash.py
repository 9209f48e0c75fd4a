"""Broken on purpose (breaks C8g, and C14b with it): ``configure_fp8_environment`` writes the environment and nothing
else, so an ``Accelerator(mixed_precision="no")`` built afterwards (the HF Trainer builds one from arguments made
before the call) reads ``ACCELERATE_FP8_BACKEND=AO`` without an FP8 handler, and ``prepare`` fails in accelerate's
``_prepare_ao`` (``'NoneType' object has no attribute 'config'``): the run crashes where it should fall back to high
precision. fp8ref's configure with every change it makes to the ``Accelerator`` class undone; the rest is fp8ref's."""

from __future__ import annotations

from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import configure_fp8_environment as _reference_configure


def configure_fp8_environment(training_args: Any) -> Any:
    from accelerate import Accelerator

    before = dict(vars(Accelerator))
    try:
        return _reference_configure(training_args)
    finally:
        for name in [n for n in vars(Accelerator) if n not in before]:
            delattr(Accelerator, name)
        for name, value in before.items():
            if name not in ("__dict__", "__weakref__") and vars(Accelerator).get(name) is not value:
                setattr(Accelerator, name, value)


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C8g: an Accelerator not in FP8 after configure still prepares a model.
EXPECTED = {
    "select": "c8g",
    "fails": ("C8g",),
    "failing_tests": ("test_c8g_accelerator_not_in_fp8_still_prepares_a_model[torchao]",),
    "says": {"C8g": "'NoneType' object has no attribute 'config'"},
    "children": True,
}
