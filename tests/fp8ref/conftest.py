"""Fixtures of fp8ref's own tests. Isolation: each test gets the environment, ``sys.path``, accelerate's singleton
state and the namespaces fp8ref's patch changes (the ``Accelerator`` class, accelerate's module bindings) back as
they were, with the suite's isolation module. The stand-in Transformer Engine is the suite's."""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fp8ref_conformance.kit.isolation import isolated
from fp8ref_conformance.kit.standin_te import standin_te as standin_te_on_path
from fp8ref_conformance.kit.standin_te import write_standin_te


@pytest.fixture(autouse=True)
def _restore_fp8_state() -> Iterator[None]:
    with isolated():
        yield


@pytest.fixture
def standin_te(tmp_path: Path) -> Iterator[Path]:
    """The conformance suite's stand-in Transformer Engine on ``sys.path`` for one test (high-precision
    ``te.Linear``, an ``fp8_autocast`` that records its arguments, ``transformer_engine.common.recipe`` and
    installed metadata, so that accelerate takes it for TE)."""
    with standin_te_on_path(tmp_path / "standin_te") as directory:
        yield directory


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


__all__ = ["make_args", "standin_te", "warnings_besides_compile_notice", "write_standin_te"]
