"""Repository-wide test settings (not shipped: the installed suite has its own conftest)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker is one of N processes sharing the cores: torch's default of one
    # intra-op thread per core would make N x cores threads fight over them (OpenMP threads spin while
    # they wait, so a 3 s training run took 55 s). One thread per worker, inherited by the processes the
    # tests start, keeps each worker on its own core.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
