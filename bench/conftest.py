"""Benchmark fixtures: GPU benchmarks skip, with the reason, where no CUDA device of capability >= 8.9 is present."""

from __future__ import annotations

import pytest

from bench.harness import gpu_skip_reason


@pytest.fixture(autouse=True)
def _skip_gpu_benchmarks_without_a_suitable_gpu(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("gpu") is not None:
        reason = gpu_skip_reason()
        if reason is not None:
            pytest.skip(reason)
