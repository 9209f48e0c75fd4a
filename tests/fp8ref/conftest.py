"""Isolation for fp8ref's own tests: each test gets the environment, ``sys.path``, accelerate's singleton state
and the namespaces fp8ref's patch changes (the ``Accelerator`` class, accelerate's module bindings) back as they
were, with the suite's isolation module."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

from fp8ref_conformance.kit.isolation import isolated


@pytest.fixture(autouse=True)
def _restore_fp8_state() -> Iterator[None]:
    with isolated():
        yield


def make_args(**overrides: Any) -> types.SimpleNamespace:
    values: dict[str, Any] = {"fp8": True, "fp8_backend": "torchao", "fp8_enable_fsdp_float8_all_gather": False}
    values.update(overrides)
    return types.SimpleNamespace(**values)
