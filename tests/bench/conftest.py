"""Isolation for the bench's tests: each test gets the environment, ``sys.path`` and accelerate back as they were."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fp8ref_conformance.kit.isolation import isolated


@pytest.fixture(autouse=True)
def _restore_fp8_state() -> Iterator[None]:
    with isolated():
        yield
