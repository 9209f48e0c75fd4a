"""``bench.harness.fp8_handler``: only a missing backend skips a benchmark; a bug inside fp8ref fails it."""

from __future__ import annotations

from typing import Any

import pytest

import fp8ref
from bench import harness


def _raise(exc: BaseException) -> Any:
    def create_fp8_kwargs(args: Any) -> Any:
        raise exc

    return create_fp8_kwargs


def test_a_missing_backend_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = fp8ref.FP8BackendUnavailableError("transformer-engine is not usable here")
    monkeypatch.setattr(fp8ref, "create_fp8_kwargs", _raise(missing))
    with pytest.raises(pytest.skip.Exception, match="backend not available"):
        harness.fp8_handler(harness.TE_DELAYED)


def test_an_import_error_inside_fp8ref_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    bug = ImportError("cannot import name 'build_fp8_handler' from 'fp8ref.recipes'")
    monkeypatch.setattr(fp8ref, "create_fp8_kwargs", _raise(bug))
    try:
        with pytest.raises(ImportError, match="build_fp8_handler"):
            harness.fp8_handler(harness.AO_ROWWISE)
    except pytest.skip.Exception as skipped:  # a skip would hide the bug: that is the failure checked here
        pytest.fail(f"an ImportError from inside fp8ref was turned into a skip: {skipped}")


def test_the_handler_of_an_available_backend_is_returned() -> None:
    from accelerate.utils import AORecipeKwargs

    assert isinstance(harness.fp8_handler(harness.AO_ROWWISE), AORecipeKwargs)
