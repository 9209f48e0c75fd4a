"""Repository-wide test settings (not shipped: the installed suite has its own conftest)."""

from __future__ import annotations

import gc
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


def pytest_collection_finish(session: pytest.Session) -> None:
    # The HF Trainer runs gc.collect() at the start of every training (Accelerator.free_memory); over the heap of a
    # worker that has imported torch, transformers and the collected tests, one collection took 0.3 s. Freezing what
    # exists after collection keeps those objects out of every later collection; what tests create is collected as
    # before. (The suite's own conftest does the same for its sessions, which the meta-tests fork.)
    if not session.config.option.collectonly:
        gc.collect()
        gc.freeze()
