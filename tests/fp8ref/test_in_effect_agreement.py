"""verify, ``fp8ref plan`` and ``fp8ref doctor`` agree on what counts as FP8 in effect: an FP8 layer that
emulates float8 does not."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch.nn as nn
from accelerate import Accelerator

import fp8ref.recipes
from fp8ref import create_fp8_kwargs, verify_fp8_status
from fp8ref.doctor import run_doctor
from fp8ref.plan import plan_model

from .conftest import make_args


def _prepared(emulate: bool) -> tuple[Accelerator, nn.Module]:
    args = make_args()
    (handler,) = create_fp8_kwargs(args)
    if emulate:
        handler.config = dataclasses.replace(handler.config, emulate=True)
    accelerator = Accelerator(mixed_precision="fp8", kwargs_handlers=[handler])
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(32, 64))
    model.add_module("odd", nn.Linear(64, 24))
    return accelerator, accelerator.unwrap_model(accelerator.prepare(model))


@pytest.mark.parametrize("emulate", [False, True])
def test_plan_of_a_prepared_model_agrees_with_verify(emulate: bool) -> None:
    accelerator, model = _prepared(emulate)
    report = verify_fp8_status(accelerator, make_args())
    plan = plan_model(model)
    planned = {layer.fqn: layer for layer in plan.layers}
    assert report.in_effect is (not emulate)
    assert bool(plan.converted) is report.in_effect
    assert planned["fc1"].convert is (not emulate) and not planned["odd"].convert
    if emulate:
        assert "emulates float8" in planned["fc1"].reason and planned["fc1"].predicted_speedup == 1.0
        assert plan.fp8_flop_share == 0.0
    else:
        assert planned["fc1"].reason == "already an FP8 layer" and planned["fc1"].predicted_speedup != 1.0


def test_doctor_reports_torchao_usable_with_the_config_fp8ref_builds() -> None:
    (torchao,) = [v for v in run_doctor().backends if v.backend == "torchao"]
    assert torchao.usable and "emulate" not in torchao.detail


def test_doctor_says_an_emulating_config_is_not_fp8_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fp8ref.recipes.build_torchao_config

    def emulating(settings: Any) -> Any:
        return dataclasses.replace(real(settings), emulate=True)

    monkeypatch.setattr(fp8ref.recipes, "build_torchao_config", emulating)
    (torchao,) = [v for v in run_doctor().backends if v.backend == "torchao"]
    assert not torchao.usable
    assert "emulates float8" in torchao.detail and "not in effect" in torchao.detail
    assert torchao.fix == "build it with emulate=False"
