"""verify_fp8_status's report and its strict mode."""

from __future__ import annotations

import json
import logging
import types

import pytest
import torch
import torch.nn as nn
from accelerate import Accelerator

from fp8ref import FP8NotActiveError, create_fp8_kwargs, get_fp8_mixed_precision, verify_fp8_status

from .conftest import make_args


def _model() -> nn.Sequential:
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(32, 64))
    model.add_module("odd", nn.Linear(64, 24))
    model.add_module("fc2", nn.Linear(24, 32))
    model.add_module("lm_head", nn.Linear(32, 16))
    return model


def _prepared(args: object) -> Accelerator:
    accelerator = Accelerator(mixed_precision=get_fp8_mixed_precision(args), kwargs_handlers=create_fp8_kwargs(args))
    accelerator.prepare(_model())
    return accelerator


def test_report_lists_converted_and_skipped_layers_with_reasons() -> None:
    args = make_args()
    report = verify_fp8_status(_prepared(args), args)
    assert report.requested and report.in_effect
    assert report.backend == "AO" and report.recipe == "rowwise"
    assert report.converted == ("fc1",)
    reasons = dict(report.skipped)
    assert set(reasons) == {"odd", "fc2", "lm_head"}
    assert reasons["odd"].startswith("dimension not divisible by 16")
    assert reasons["lm_head"].startswith("head or embedding layer")
    assert json.loads(json.dumps(report.to_dict()))["converted"] == ["fc1"]
    assert "IN EFFECT" in report.summary() and "lm_head" in report.summary()


def test_recipe_names_the_all_gather_variant() -> None:
    args = make_args(fp8_enable_fsdp_float8_all_gather=True)
    assert verify_fp8_status(_prepared(args), args).recipe == "tensorwise + fsdp float8 all-gather"


def test_not_in_effect_warns_and_explains(caplog: pytest.LogCaptureFixture) -> None:
    accelerator = Accelerator()
    accelerator.prepare(_model())
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(accelerator, make_args())
    assert not report.in_effect
    assert any("fp8_enabled" in problem for problem in report.problems)
    assert any("no FP8 layer" in problem for problem in report.problems)
    assert any("NOT in effect" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_strict_raises_instead_of_warning() -> None:
    accelerator = Accelerator()
    accelerator.prepare(_model())
    with pytest.raises(FP8NotActiveError, match="NOT in effect"):
        verify_fp8_status(accelerator, make_args(), strict=True)


def test_unprepared_accelerator_is_reported() -> None:
    args = make_args()
    accelerator = Accelerator(mixed_precision="fp8", kwargs_handlers=create_fp8_kwargs(args))
    report = verify_fp8_status(accelerator, args)
    assert not report.in_effect
    assert any("accelerator.prepare" in problem for problem in report.problems)


def test_custom_filter_that_skips_eligible_layers_is_noted_but_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = make_args()
    (handler,) = create_fp8_kwargs(args)
    handler.module_filter_func = lambda module, fqn: fqn == "fc1"
    model = nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32))
    model.add_module("fc1", nn.Linear(32, 32))
    accelerator = Accelerator(mixed_precision="fp8", kwargs_handlers=[handler])
    accelerator.prepare(model)
    with caplog.at_level(logging.INFO, logger="fp8ref"):
        report = verify_fp8_status(accelerator, args)
    assert report.in_effect and report.converted == ("fc1",)
    assert dict(report.skipped)["0"] == "accepted by the filter but not converted"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("2 eligible linear layer(s) were not converted" in p for p in report.problems)


def test_disabled_request_reports_not_requested_for_any_accelerator() -> None:
    report = verify_fp8_status(None, make_args(fp8=False, fp8_backend="bogus"))
    assert not report.requested and report.summary() == "FP8: not requested"


def _te_like(name: str) -> type[nn.Module]:
    """A class that looks like a Transformer Engine module (name, module path, a weight), nothing else."""

    def __init__(self: nn.Module) -> None:
        nn.Module.__init__(self)
        self.weight = nn.Parameter(torch.ones(32))

    return type(
        name, (nn.Module,), {"__module__": f"transformer_engine.pytorch.module.{name.lower()}", "__init__": __init__}
    )


def test_only_te_gemm_modules_count_as_fp8_layers() -> None:
    """A model whose only TE modules are norms (as when accelerate's TE conversion stopped early) is not
    running FP8 GEMMs."""
    norms_only = nn.Sequential()
    norms_only.add_module("norm", _te_like("LayerNorm")())
    norms_only.add_module("fc", nn.Linear(32, 32))
    accelerator = types.SimpleNamespace(fp8_enabled=True, fp8_backend="TE", _models=[norms_only])
    report = verify_fp8_status(accelerator, make_args(fp8_backend="te"))
    assert not report.in_effect and report.converted == ()

    with_linear = nn.Sequential()
    with_linear.add_module("fc", _te_like("Linear")())
    accelerator = types.SimpleNamespace(fp8_enabled=True, fp8_backend="TE", _models=[with_linear])
    report = verify_fp8_status(accelerator, make_args(fp8_backend="te"))
    assert report.in_effect and report.converted == ("fc",)


def test_wrapper_components_are_left_out_of_layer_names() -> None:
    inner = nn.Sequential()
    inner.add_module("lm_head", nn.Linear(32, 16))
    wrapper = nn.Module()
    wrapper.add_module("_fsdp_wrapped_module", inner)
    model = nn.Module()
    model.add_module("_orig_mod", wrapper)
    model.add_module("module", nn.Linear(32, 24))  # a real child named "module" keeps its name
    accelerator = types.SimpleNamespace(fp8_enabled=True, fp8_backend="AO", _models=[model])
    reasons = dict(verify_fp8_status(accelerator, make_args()).skipped)
    assert set(reasons) == {"lm_head", "module"}
    assert reasons["lm_head"].startswith("head or embedding layer")
