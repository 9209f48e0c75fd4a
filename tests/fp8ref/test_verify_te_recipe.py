"""verify reports the recipe the Transformer Engine forward runs with, read from the prepared forward (the
recipe accelerate's ``contextual_fp8_autocast`` passes to ``fp8_autocast``), and warns when it is not the
recipe the accelerator's handler holds. Checked with the suite's stand-in TE (no kernels, records its
autocasts) on the CPU.

accelerate 1.15's DeepSpeed path wraps the forward with ``apply_fp8_autowrap(model, self.fp8_recipe_handler)``
(the deprecated ``FP8RecipeKwargs`` only): here that wrapping is reproduced with accelerate's own function on
an accelerator that says it runs DeepSpeed, which is the state ``prepare`` leaves behind.
"""

from __future__ import annotations

import logging
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from accelerate import Accelerator

from fp8ref import create_fp8_kwargs, verify_fp8_status
from fp8ref.verify.recipe import SOURCE_DERIVED, SOURCE_FORWARD, TERecipe

from .conftest import make_args

ASKED = TERecipe("DelayedScaling", "HYBRID", 16, "max")
TE_DEFAULT = TERecipe("DelayedScaling", "HYBRID", 1024, "max")


@pytest.fixture
def te(tmp_path: Path) -> Iterator[types.ModuleType]:
    from fp8ref_conformance.kit.standin_te import standin_te

    with standin_te(tmp_path / "te"):
        import transformer_engine.pytorch as te_pytorch

        yield te_pytorch


def _te_model(te: types.ModuleType) -> nn.Module:
    model = nn.Sequential()
    model.add_module("fc", te.Linear(32, 32))
    model.add_module("lm_head", nn.Linear(32, 16))
    return model


def _fake_accelerator(model: nn.Module, **handlers: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        fp8_enabled=True,
        fp8_backend="TE",
        distributed_type="DistributedType.DEEPSPEED",
        _models=[model],
        te_recipe_handler=handlers.get("te"),
        fp8_recipe_handler=handlers.get("fp8"),
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("fp8ref")]


def test_recipe_in_effect_without_deepspeed_is_the_one_built(
    te: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    args = make_args(fp8_backend="te")
    accelerator = Accelerator(mixed_precision="fp8", kwargs_handlers=create_fp8_kwargs(args))
    model = nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 16))
    model, _ = accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(accelerator, args)
    assert report.in_effect and report.te_recipe == ASKED and report.te_recipe_asked == ASKED
    assert report.te_recipe_source == SOURCE_FORWARD
    assert "TE forward recipe: DelayedScaling HYBRID, amax_history_len=16, amax_compute_algo=max" in report.summary()
    assert report.to_dict()["te_recipe"]["in_effect"]["amax_history_len"] == 16
    assert _warnings(caplog) == []
    model(torch.randn(2, 32))  # what the forward really passes to fp8_autocast: the same recipe
    recorded = te.AUTOCAST_CALLS[-1]["fp8_recipe"]
    assert (recorded.amax_history_len, recorded.amax_compute_algo) == (16, "max")


def test_dropped_recipe_under_deepspeed_is_reported_and_warned(
    te: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    from accelerate.utils.transformer_engine import apply_fp8_autowrap

    (handler,) = create_fp8_kwargs(make_args(fp8_backend="te"))
    model = apply_fp8_autowrap(_te_model(te), None)  # _prepare_deepspeed: self.fp8_recipe_handler is None
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(_fake_accelerator(model, te=handler), make_args(fp8_backend="te"))
    assert report.in_effect and report.te_recipe == TE_DEFAULT and report.te_recipe_asked == ASKED
    (message,) = _warnings(caplog)
    assert "amax_history_len=1024" in message and "amax_history_len=16" in message
    assert "_prepare_deepspeed" in message and "FP8RecipeKwargs" in message and "dropped" in message


def test_deepspeed_path_that_gets_the_recipe_is_quiet(te: types.ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    """After a fix that hands the DeepSpeed path the recipe (the deprecated handler it reads), the effect is
    judged, not the handler: the forward runs with the recipe built, and nothing is said."""
    from accelerate.utils import FP8RecipeKwargs
    from accelerate.utils.transformer_engine import apply_fp8_autowrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # FP8RecipeKwargs is deprecated (also in to_kwargs)
        deprecated = FP8RecipeKwargs(backend="TE", fp8_format="HYBRID", amax_history_len=16, amax_compute_algo="max")
        model = apply_fp8_autowrap(_te_model(te), deprecated)
    (handler,) = create_fp8_kwargs(make_args(fp8_backend="te"))
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(_fake_accelerator(model, te=handler, fp8=deprecated), make_args(fp8_backend="te"))
    assert report.te_recipe == ASKED and report.te_recipe_source == SOURCE_FORWARD
    assert _warnings(caplog) == []


def test_without_the_wrapper_the_recipe_is_derived_as_accelerate_does(te: types.ModuleType) -> None:
    (handler,) = create_fp8_kwargs(make_args(fp8_backend="te"))
    accelerator = _fake_accelerator(_te_model(te), te=handler)
    report = verify_fp8_status(accelerator, make_args(fp8_backend="te"))
    assert report.te_recipe == TE_DEFAULT and report.te_recipe_source == SOURCE_DERIVED
    accelerator.distributed_type = "DistributedType.NO"  # outside DeepSpeed: te_recipe_handler is read
    assert verify_fp8_status(accelerator, make_args(fp8_backend="te")).te_recipe == ASKED


def test_te_under_torch_compile_is_said_before_the_first_step(
    te: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    """TE refuses DelayedScaling in compiled code (from TE 2.15). A dynamo plugin shows it before prepare; the
    deferred check after prepare does not repeat it."""
    args = make_args(fp8_backend="te")
    accelerator = Accelerator(mixed_precision="fp8", kwargs_handlers=create_fp8_kwargs(args), dynamo_backend="inductor")
    with caplog.at_level(logging.WARNING):
        pending = verify_fp8_status(accelerator, args)
    assert pending.pending
    (message,) = _warnings(caplog)
    assert "DelayedScaling is not supported under torch.compile" in message and "torch_compile=False" in message
    caplog.clear()
    model = nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 16))
    with caplog.at_level(logging.WARNING):
        accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert _warnings(caplog) == []
    report = verify_fp8_status(accelerator, args)  # a fresh verify after prepare says it again
    assert report.execution == "compiled" and any("DelayedScaling is not supported" in n for n in report.notices)
