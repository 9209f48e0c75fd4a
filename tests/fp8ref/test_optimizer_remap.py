"""With FSDP float8 all-gather on, torchao replaces each converted weight by a new Parameter during
``prepare``. Outside FSDP accelerate does not remap optimizers for torchao, so an optimizer built before
``prepare`` would silently train nothing. verify_fp8_status detects it; the patch fixes it."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn as nn
from accelerate import Accelerator

from fp8ref import (
    FP8NotActiveError,
    create_fp8_kwargs,
    patch_accelerator_for_fp8,
    unpatch_accelerator_for_fp8,
    verify_fp8_status,
)

from .conftest import make_args, warnings_besides_compile_notice


def _model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def _train(accelerator: Accelerator, model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """Three steps; whether the first layer's weight changed."""
    first = model[0].weight.detach().clone()
    x = torch.randn(16, 32)
    for _ in range(3):
        accelerator.backward(model(x).pow(2).mean())
        optimizer.step()
        optimizer.zero_grad()
    return not torch.equal(first, model[0].weight.detach())


def test_unpatched_stale_optimizer_is_reported_as_fp8_not_training(caplog: pytest.LogCaptureFixture) -> None:
    args = make_args(fp8_enable_fsdp_float8_all_gather=True)
    accelerator = Accelerator(mixed_precision="fp8", kwargs_handlers=create_fp8_kwargs(args))
    model, optimizer = accelerator.prepare(*_model_and_optimizer())
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(accelerator, args)
    assert not report.in_effect
    assert any("optimizer holds 2 parameter(s)" in problem for problem in report.problems)
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    with pytest.raises(FP8NotActiveError, match="never be updated"):
        verify_fp8_status(accelerator, args, strict=True)
    assert _train(accelerator, model, optimizer) is False  # the failure verify warned about is real


def test_patch_points_the_optimizer_at_the_replaced_weights(caplog: pytest.LogCaptureFixture) -> None:
    args = make_args(fp8_enable_fsdp_float8_all_gather=True)
    patch_accelerator_for_fp8(args)
    accelerator = Accelerator()
    model, optimizer = accelerator.prepare(*_model_and_optimizer())
    in_model = {id(p) for p in model.parameters()}
    assert all(id(p) in in_model for group in optimizer.param_groups for p in group["params"])
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(accelerator, args)
    # quiet but for the C12e notice: the model runs eagerly (it trains below, so it is not compiled)
    assert report.in_effect and not warnings_besides_compile_notice(caplog.records)
    assert _train(accelerator, model, optimizer) is True


def test_unpatch_restores_prepare_ao() -> None:
    original = Accelerator._prepare_ao
    patch_accelerator_for_fp8(make_args())
    assert Accelerator._prepare_ao is not original
    unpatch_accelerator_for_fp8()
    assert Accelerator._prepare_ao is original
