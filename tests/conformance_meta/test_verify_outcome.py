"""How the suite judges verify (C12): only a deliberate FP8 error counts as the permitted "raises"; a verify
that crashes (AttributeError and the like) is failed, not credited."""

from __future__ import annotations

import logging
import types

import pytest

from fp8ref_conformance.kit.verify_outcome import (
    Outcome,
    assert_loud,
    assert_quiet,
    call_verify,
    is_deliberate_fp8_error,
    observe,
)


class _FP8Off(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("error", "deliberate"),
    [
        (_FP8Off("FP8 training was requested but is NOT in effect"), True),
        (RuntimeError("the layers only emulate float8: no speedup"), True),
        (ValueError("fp8 is not in effect"), True),
        (AttributeError("'NoneType' object has no attribute 'fp8_enabled'"), False),
        (AttributeError("FP8 is not in effect"), False),  # a programming-error type, whatever it says
        (TypeError("verify_fp8_status() missing 1 required positional argument"), False),
        (KeyError("fp8"), False),
        (RuntimeError("Float8Linear has no attribute"), False),  # names a class, not FP8 or float8
        (RuntimeError("CUDA error: out of memory"), False),
    ],
)
def test_only_a_deliberate_fp8_error_counts(error: Exception, deliberate: bool) -> None:
    assert is_deliberate_fp8_error(error) is deliberate


def _verify_raising(error: Exception) -> types.SimpleNamespace:
    def verify_fp8_status(accelerator: object, training_args: object) -> None:
        raise error

    return types.SimpleNamespace(verify_fp8_status=verify_fp8_status)


def test_a_verify_that_crashes_is_not_loud() -> None:
    """What ``_verify_outcome`` used to credit as "raises" (``except Exception``) now fails C12a."""
    outcome = call_verify(_verify_raising(AttributeError("'NoneType' object has no attribute 'models'")), None, None)
    assert isinstance(outcome.error, AttributeError)
    with pytest.raises(AssertionError, match="NOT a deliberate FP8 error"):
        assert_loud(outcome, "FP8 is not in effect")


def test_a_deliberate_error_is_loud_and_not_quiet() -> None:
    outcome = call_verify(_verify_raising(RuntimeError("FP8 is NOT in effect: no FP8 layer")), None, None)
    assert_loud(outcome, "FP8 is not in effect")
    with pytest.raises(AssertionError, match="raised although"):
        assert_quiet(outcome, "FP8 is in effect")


def test_fp8_warnings_leave_out_unrelated_records() -> None:
    with observe() as outcome:
        logging.getLogger("some.library").warning("a deprecation nobody asked for")
    assert outcome.warned and not outcome.fp8_warnings()
    with pytest.raises(AssertionError, match="neither warned"):
        assert_loud(outcome, "FP8 is not in effect", records=Outcome.fp8_warnings)
    assert_quiet(outcome, "FP8 is in effect", records=Outcome.fp8_warnings)
    with observe() as outcome:
        logging.getLogger("impl").warning("FP8 requested but no float8 layer")
    assert_loud(outcome, "FP8 is not in effect", records=Outcome.fp8_warnings)
