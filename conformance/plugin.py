"""pytest plugin of the FP8 conformance suite: selects the implementation under test."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fp8-conformance")
    group.addoption(
        "--fp8-impl",
        default=None,
        help="module implementing the five FP8 helper functions (default: $FP8REF_IMPL or fp8ref)",
    )
