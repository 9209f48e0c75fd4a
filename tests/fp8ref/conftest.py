"""Isolation for fp8ref's own tests: each test gets the environment, accelerate's singleton state and
``Accelerator.__init__`` back as they were."""

from __future__ import annotations

import os
import types
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _restore_fp8_state() -> Iterator[None]:
    import accelerate.accelerator as accelerator_module
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    environ = dict(os.environ)
    init = Accelerator.__init__
    prepare_ao = Accelerator._prepare_ao
    convert_model = accelerator_module.convert_model
    try:
        yield
    finally:
        AcceleratorState._reset_state(True)
        Accelerator.__init__ = init  # type: ignore[method-assign]
        Accelerator._prepare_ao = prepare_ao  # type: ignore[method-assign]
        for name in ("_fp8ref_original_init", "_fp8ref_original_prepare_ao", "_fp8ref_settings"):
            if name in vars(Accelerator):
                delattr(Accelerator, name)
        accelerator_module.convert_model = convert_model
        os.environ.clear()
        os.environ.update(environ)


def make_args(**overrides: Any) -> types.SimpleNamespace:
    values: dict[str, Any] = {"fp8": True, "fp8_backend": "torchao", "fp8_enable_fsdp_float8_all_gather": False}
    values.update(overrides)
    return types.SimpleNamespace(**values)
