"""verify tells apart why ``accelerator.fp8_enabled`` is false, and gives each reason its fix.

The environment is set by hand where a test needs "configure_fp8_environment was called" without its other
effects (what configure does besides ACCELERATE_MIXED_PRECISION is not this file's concern).
"""

from __future__ import annotations

import logging
import types
from typing import Any

import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from fp8ref import FP8NotActiveError, configure_fp8_environment, patch_accelerator_for_fp8, verify_fp8_status
from fp8ref.verify.reasons import (
    OFF_BUILT_BEFORE_CONFIGURE,
    OFF_BUILT_BEFORE_PATCH,
    OFF_EXPLICIT_PRECISION,
    OFF_NOT_CONFIGURED,
    OFF_UNKNOWN,
)

from .conftest import make_args


def _loud(accelerator: Any, args: Any, caplog: pytest.LogCaptureFixture) -> tuple[str | None, str]:
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(accelerator, args)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("fp8ref")]
    assert not report.in_effect and "NOT in effect" in record.getMessage()
    assert f"why FP8 is off: {report.off_reason}" in record.getMessage()
    assert report.to_dict()["off_reason"] == report.off_reason
    return report.off_reason, record.getMessage()


def test_never_configured(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    reason, message = _loud(Accelerator(), make_args(), caplog)
    assert reason == OFF_NOT_CONFIGURED
    assert "call configure_fp8_environment(args) before the Accelerator" in message


def test_accelerator_built_before_configure(caplog: pytest.LogCaptureFixture) -> None:
    accelerator = Accelerator()
    configure_fp8_environment(make_args())
    reason, message = _loud(accelerator, make_args(), caplog)
    assert reason == OFF_BUILT_BEFORE_CONFIGURE
    assert "built before configure_fp8_environment" in message


def test_training_arguments_built_before_configure(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LLaMA-Factory's order: its TrainingArguments read ACCELERATE_MIXED_PRECISION before configure set it,
    and the Trainer passes their mixed_precision to its Accelerator."""
    args = make_args(mixed_precision="no", bf16=False, torch_compile=False)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp8")
    reason, message = _loud(accelerator, args, caplog)
    assert reason == OFF_BUILT_BEFORE_CONFIGURE
    assert "TrainingArguments were created before configure_fp8_environment" in message
    assert "patch_accelerator_for_fp8()" in message


@pytest.mark.parametrize("flag", ["bf16", "fp16"])
def test_explicit_half_precision_from_the_training_arguments(
    flag: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp8")
    args = make_args(mixed_precision=flag, bf16=flag == "bf16", fp16=flag == "fp16")
    accelerator = types.SimpleNamespace(fp8_enabled=False, mixed_precision=flag, _models=[])
    reason, message = _loud(accelerator, args, caplog)
    assert reason == OFF_EXPLICIT_PRECISION and f"TrainingArguments({flag}=True)" in message


def test_explicit_precision_on_a_plain_accelerator(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp8")
    accelerator = types.SimpleNamespace(fp8_enabled=False, mixed_precision="bf16", _models=[])
    reason, message = _loud(accelerator, make_args(), caplog)
    assert reason == OFF_EXPLICIT_PRECISION and "mixed_precision='bf16'" in message


def test_accelerator_built_before_the_patch(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    accelerator = Accelerator()
    patch_accelerator_for_fp8(make_args())
    reason, message = _loud(accelerator, make_args(), caplog)
    assert reason in (OFF_BUILT_BEFORE_PATCH, OFF_BUILT_BEFORE_CONFIGURE)  # the patch may set the variable too
    assert "before the Accelerator or the Trainer is created" in message
    AcceleratorState._reset_state(True)
    assert Accelerator().fp8_enabled  # the fix the message gives works


def test_an_accelerator_like_object_without_mixed_precision(caplog: pytest.LogCaptureFixture) -> None:
    reason, _ = _loud(types.SimpleNamespace(fp8_enabled=False), make_args(), caplog)
    assert reason == OFF_UNKNOWN


def test_strict_raises_with_the_reason() -> None:
    with pytest.raises(FP8NotActiveError, match="why FP8 is off: not configured"):
        verify_fp8_status(Accelerator(), make_args(), strict=True)


def test_no_reason_when_fp8_is_enabled() -> None:
    configure_fp8_environment(make_args())
    report = verify_fp8_status(Accelerator(), make_args())
    assert report.pending and report.off_reason is None
