"""How the suite judges verify (C12): only a deliberate FP8 error counts as the permitted "raises"; a verify
that crashes (AttributeError and the like) is failed, not credited; where other libraries run too, a warning counts
by its level and by who logged it (the implementation, not transformers, accelerate, torchao or DeepSpeed), never by
its words."""

from __future__ import annotations

import importlib.util
import logging
import types

import pytest

from fp8ref_conformance.kit.logs import LogCapture, is_third_party
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


def _record(name: str, message: str, pathname: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, pathname, 1, message, None, None)


def _package_file(package: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        pytest.skip(f"{package} is not installed here (it is in fp8ref's test extra)")
    return spec.origin


@pytest.mark.parametrize("package", ["transformers", "accelerate", "torchao", "deepspeed"])
def test_third_party_records_never_decide_whatever_they_say(package: str) -> None:
    """A library's warning that names FP8 is not verify's, by its logger and by the file that logged it."""
    by_logger = _record(f"{package}.something", "FP8 is not in effect: no Float8Linear", __file__)
    by_file = _record("some.renamed.logger", "FP8 is not in effect", _package_file(package))
    for record in (by_logger, by_file):
        assert is_third_party(record), record
    outcome = Outcome(logs=LogCapture([by_logger, by_file]))
    assert outcome.warned and not outcome.own_warnings()
    with pytest.raises(AssertionError, match="neither warned"):
        assert_loud(outcome, "FP8 is not in effect", records=Outcome.own_warnings)
    assert_quiet(outcome, "FP8 is in effect", records=Outcome.own_warnings)


def test_the_implementations_record_counts_whatever_its_words() -> None:
    """C12d: a warning, not a wording. The implementation's logger, its file, or a package it delegates to."""
    for record in (
        _record("my_fp8_utils", "no layer converted; training runs in bf16", __file__),
        _record("fp8ref.verify", "NOT IN EFFECT", _package_file("fp8ref")),
        _record("root", "layers emulate: no speedup", __file__),
    ):
        assert not is_third_party(record), record
        outcome = Outcome(logs=LogCapture([record]))
        assert_loud(outcome, "FP8 is not in effect", records=Outcome.own_warnings)
        with pytest.raises(AssertionError, match="warned although"):
            assert_quiet(outcome, "FP8 is in effect", records=Outcome.own_warnings)
    info = _record("my_fp8_utils", "FP8 NOT IN EFFECT", __file__, level=logging.INFO)
    assert not Outcome(logs=LogCapture([info])).own_warnings(), "judged by level: INFO is not a warning"


def test_a_captured_python_warning_is_judged_by_the_file_that_warned() -> None:
    """``logging.captureWarnings``: the record comes from ``logging`` itself; the file named in it decides."""
    mine = _record("py.warnings", f"{__file__}:3: UserWarning: no layer converted\n", logging.__file__)
    theirs = _record("py.warnings", f"{_package_file('torch')}:3: UserWarning: FP8 deprecated\n", logging.__file__)
    assert not is_third_party(mine) and is_third_party(theirs)


def test_records_of_a_real_block_are_told_apart() -> None:
    """Through :func:`observe`, as the C12d tests use it: a live record of the suite's libraries is left out."""
    with observe() as outcome:
        logging.getLogger("accelerate.accelerator").warning("FP8 recipe defaults were used")
        logging.getLogger("impl").warning("nothing was converted: bf16 training")
    assert [r.name for r in outcome.own_warnings()] == ["impl"]
    assert Outcome.fp8_warnings is Outcome.own_warnings  # the earlier name, kept for callers
