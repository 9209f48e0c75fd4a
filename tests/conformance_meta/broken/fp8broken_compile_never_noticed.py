"""Broken on purpose (breaks C12e): verify never says that torchao's float8 layers run eagerly, so a run without
``torch.compile`` is reported in effect while it trains slower than bf16. fp8ref's verify with every record that
names ``torch.compile`` dropped; the other four functions are fp8ref's."""

from __future__ import annotations

from typing import Any

from _c12e_notice import silence_fp8ref_compile_notices

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import verify_fp8_status as _reference_verify


def verify_fp8_status(accelerator: Any, training_args: Any) -> Any:
    silence_fp8ref_compile_notices()
    return _reference_verify(accelerator, training_args)


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C12e: a verify that never names torch.compile.
EXPECTED = {
    "select": "(c12e or c12b) and not compiling_at_prepare",
    "fails": ("C12e",),
    "passes": ("C12b",),
    "failing_tests": (
        "test_c12e_eager_float8_layers_get_one_compile_notice",
        "test_c12e_deferred_check_judges_compilation_after_the_next_prepare[eager]",
        "test_c12e_trainer_running_eagerly_gets_the_notice_after_train",
    ),
    "passing_tests": ("test_c12e_compiled_float8_layers_get_no_notice[*]",),
    "says": {"C12e": "torch.compile"},
    "children": True,
}
