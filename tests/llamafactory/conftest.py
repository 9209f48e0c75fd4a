"""The real-client tests need LLaMA-Factory's own environment (``tox -e llamafactory``): its pins (accelerate 1.11,
transformers 5.6, peft 0.18.1) differ from the main environment's. The main test run leaves this folder out
(``--ignore=tests/llamafactory`` in pyproject.toml's addopts); run here without LLaMA-Factory, the session stops with
a usage error instead of skipping anything."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("llamafactory") is None:
    raise pytest.UsageError(
        "tests/llamafactory needs LLaMA-Factory 0.9.5 and its pins, which the main environment does not have: "
        "run them with `tox -e llamafactory`"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "runs(*names): the LLaMA-Factory runs (test_real_client.RUNS) a test judges")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--preflight-table", metavar="FILE", help="write the preflight agreement table (Markdown) to FILE")
