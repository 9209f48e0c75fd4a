"""Isolation for fp8ref's own tests: each test gets the environment, accelerate's singleton state and
``Accelerator.__init__`` back as they were."""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Iterable, Iterator
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


#: How fp8ref's C12e notice begins (torchao float8 layers in effect, none of them compiled).
COMPILE_NOTICE_START = "fp8ref: FP8 is in effect, but none of its"


def is_compile_notice(record: logging.LogRecord) -> bool:
    return record.levelno == logging.WARNING and record.getMessage().startswith(COMPILE_NOTICE_START)


def warnings_besides_compile_notice(records: Iterable[logging.LogRecord]) -> list[logging.LogRecord]:
    """The records at WARNING or above other than the C12e notice: what "quiet" forbids on an eager model."""
    return [r for r in records if r.levelno >= logging.WARNING and not is_compile_notice(r)]
