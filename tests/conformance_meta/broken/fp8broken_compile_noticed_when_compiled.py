"""Broken on purpose (breaks C12e, and C12b, which is judged on a compiled model): verify says torchao's float8
layers run eagerly whenever there are any, compiled or not, so that the user who did turn ``torch.compile`` on is
told to turn it on. fp8ref's verify (its own notice silenced) plus that notice; the other four are fp8ref's."""

from __future__ import annotations

from typing import Any

from _c12e_notice import float8_layers, verify_with_notice

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import verify_fp8_status as _reference_verify


def _any_float8_layer(accelerator: Any) -> bool:
    return any(True for _ in float8_layers(accelerator, compiled_by_accelerator=False))


verify_fp8_status = verify_with_notice(_reference_verify, _any_float8_layer)

#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12e: a verify that names torch.compile for compiled models too.
EXPECTED = {
    "select": "(c12e or c12b) and not trainer",
    "fails": ("C12b", "C12e"),
    "failing_tests": ("test_c12e_compiled_float8_layers_get_no_notice[*]",),
    "passing_tests": (
        "test_c12e_eager_float8_layers_get_one_compile_notice",
        "test_c12e_deferred_check_judges_compilation_after_the_next_prepare[eager]",
        "test_c12e_te_layers_never_get_the_notice",
    ),
    "children": True,
}
