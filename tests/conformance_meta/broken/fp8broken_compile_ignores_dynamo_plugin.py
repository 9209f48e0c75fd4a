"""Broken on purpose (breaks C12e): verify looks for ``torch.compile`` in the prepared models only (a wrapper, a
module compiled in place) and never at the accelerator's dynamo plugin. accelerate keeps the model it was given in
``accelerator._models`` and wraps it with ``torch.compile`` only in what ``prepare`` returns, so every run compiled
that way (the HF Trainer's ``torch_compile=True``, ``Accelerator(dynamo_backend=...)``) is told to turn
``torch.compile`` on.
fp8ref's verify (its own notice silenced) plus that notice; the other four functions are fp8ref's."""

from __future__ import annotations

from typing import Any

from _c12e_notice import float8_layers, verify_with_notice

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import verify_fp8_status as _reference_verify


def _no_layer_in_a_compiled_module(accelerator: Any) -> bool:
    layers = list(float8_layers(accelerator, compiled_by_accelerator=False))  # the defect: no look at the plugin
    return bool(layers) and not any(compiled for _, compiled in layers)


verify_fp8_status = verify_with_notice(_reference_verify, _no_layer_in_a_compiled_module)

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12e: a verify that never looks at the accelerator's dynamo plugin.
EXPECTED = {
    "select": "(c12e or c12b) and not eagerly",
    "fails": ("C12e",),
    "passes": ("C12b",),
    "failing_tests": (
        "test_c12e_compiled_float8_layers_get_no_notice[dynamo-plugin]",
        "test_c12e_compiled_float8_layers_get_no_notice[regional-dynamo-plugin]",
        "test_c12e_deferred_check_judges_compilation_after_the_next_prepare[dynamo-plugin]",
        "test_c12e_trainer_compiling_at_prepare_gets_no_notice",
    ),
    "passing_tests": (
        "test_c12e_compiled_float8_layers_get_no_notice[wrapper-of-the-model]",
        "test_c12e_compiled_float8_layers_get_no_notice[wrapper-of-an-enclosing-module]",
        "test_c12e_compiled_float8_layers_get_no_notice[compiled-in-place]",
        "test_c12e_compiled_float8_layers_get_no_notice[block-compiled-in-place]",
        "test_c12e_eager_float8_layers_get_one_compile_notice",
        "test_c12e_deferred_check_judges_compilation_after_the_next_prepare[eager]",
    ),
    "children": True,
}
