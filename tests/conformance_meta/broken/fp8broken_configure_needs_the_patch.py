"""Broken on purpose (breaks C14b): ``configure_fp8_environment`` writes the environment and does nothing to the
``Accelerator`` class, so FP8 comes on only where ``patch_accelerator_for_fp8()`` is called too. LLaMA-Factory calls
the patch for ``te`` only, and its ``TrainingArguments`` (built before configure) hand ``mixed_precision="no"`` to the
Trainer's Accelerator: a torchao run trains in bf16. fp8ref's configure with any change it makes to
``Accelerator.__init__`` undone (what else it does to the class, such as C8g's protection, is kept); the rest is
fp8ref's."""

from __future__ import annotations

from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import configure_fp8_environment as _reference_configure


def configure_fp8_environment(training_args: Any) -> Any:
    from accelerate import Accelerator

    init = vars(Accelerator)["__init__"]
    try:
        return _reference_configure(training_args)
    finally:
        Accelerator.__init__ = init  # type: ignore[method-assign]


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C14b: LLaMA-Factory calls no patch for torchao.
EXPECTED = {
    "select": "c14b",
    "fails": ("C14b",),
    "failing_tests": ("test_c14b_llamafactory_call_order_converts_projections_cpu[torchao]",),
    "passing_tests": ("test_c14b_llamafactory_call_order_converts_projections_cpu[te]",),
    "children": True,
}
