"""verify_fp8_status's report and its strict mode."""

from __future__ import annotations

import dataclasses
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


def _fp8_accelerator(args: object, handlers: list[object] | None = None) -> Accelerator:
    return Accelerator(mixed_precision="fp8", kwargs_handlers=create_fp8_kwargs(args) if handlers is None else handlers)


def _emulating_handlers(args: object) -> list[object]:
    (handler,) = create_fp8_kwargs(args)
    handler.config = dataclasses.replace(handler.config, emulate=True)
    return [handler]


def test_unprepared_accelerator_is_configured_not_yet_prepared(caplog: pytest.LogCaptureFixture) -> None:
    args = make_args()
    accelerator = _fp8_accelerator(args)
    with caplog.at_level(logging.INFO, logger="fp8ref"):
        report = verify_fp8_status(accelerator, args)
    assert report.pending and not report.in_effect and report.state == "configured, layers not yet prepared"
    assert report.summary().startswith("FP8: CONFIGURED, LAYERS NOT YET PREPARED (backend AO, recipe rowwise)")
    assert report.to_dict()["state"] == "configured, layers not yet prepared"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_follow_up_warns_after_prepare_of_a_model_without_fp8_layer(caplog: pytest.LogCaptureFixture) -> None:
    args = make_args()
    accelerator = _fp8_accelerator(args)
    verify_fp8_status(accelerator, args)
    verify_fp8_status(accelerator, args)  # a second call before prepare does not wrap again
    wrapper = vars(accelerator)["prepare"]
    accelerator.prepare(torch.utils.data.DataLoader(list(range(4))))  # no model yet: still waiting
    assert vars(accelerator)["prepare"] is wrapper
    with caplog.at_level(logging.WARNING):
        accelerator.prepare(nn.Sequential(nn.Linear(32, 24)))
    assert "prepare" not in vars(accelerator), "the class's prepare is back"
    assert any("NOT in effect" in r.getMessage() and "no FP8 layer" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        accelerator.prepare(nn.Sequential(nn.Linear(32, 24)))  # the check ran once
    assert not caplog.records


def test_follow_up_is_quiet_when_fp8_layers_are_in_effect(caplog: pytest.LogCaptureFixture) -> None:
    """Quiet on a compiled model (a lazy torch.compile wrapper: nothing compiles here); an eager one gets the
    C12e notice, tested in test_verify_compile.py."""
    args = make_args()
    accelerator = _fp8_accelerator(args)
    verify_fp8_status(accelerator, args, strict=True)
    with caplog.at_level(logging.WARNING):
        accelerator.prepare(torch.compile(_model()))
    # fp8ref's own records only: torchao warns once at its first import, which may fall in this block
    fp8ref_records = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("fp8ref")]
    assert fp8ref_records == [] and "prepare" not in vars(accelerator)


def test_strict_raises_at_the_follow_up() -> None:
    args = make_args()
    accelerator = _fp8_accelerator(args)
    verify_fp8_status(accelerator, args, strict=True)  # quiet: FP8 may still come into effect
    with pytest.raises(FP8NotActiveError, match="no FP8 layer"):
        accelerator.prepare(nn.Sequential(nn.Linear(32, 24)))


def test_strict_raises_at_once_when_fp8_is_disabled_before_prepare() -> None:
    with pytest.raises(FP8NotActiveError, match="fp8_enabled is False"):
        verify_fp8_status(Accelerator(), make_args(), strict=True)


def test_an_own_prepare_attribute_is_put_back() -> None:
    args = make_args()
    accelerator = _fp8_accelerator(args)
    calls: list[int] = []
    class_prepare = accelerator.prepare

    def own_prepare(*items: object) -> object:
        calls.append(len(items))
        return class_prepare(*items)

    accelerator.prepare = own_prepare  # type: ignore[method-assign]
    verify_fp8_status(accelerator, args)
    accelerator.prepare(_model())
    assert calls == [1] and vars(accelerator)["prepare"] is own_prepare


def test_emulated_layers_are_not_in_effect_and_the_warning_says_why(caplog: pytest.LogCaptureFixture) -> None:
    args = make_args()
    accelerator = _fp8_accelerator(args, _emulating_handlers(args))
    accelerator.prepare(_model())
    with caplog.at_level(logging.WARNING):
        report = verify_fp8_status(accelerator, args)
    assert not report.in_effect and report.state == "not in effect"
    assert report.converted == ("fc1",) and report.emulated == ("fc1",)
    assert "of which emulate float8 (no float8 matmul): 1" in report.summary()
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "emulate=True" in record.getMessage() and "no speedup will come" in record.getMessage()
    with pytest.raises(FP8NotActiveError, match="no speedup will come"):
        verify_fp8_status(accelerator, args, strict=True)


@pytest.mark.parametrize(
    ("recipe", "all_gather"),
    [
        (None, False),
        ("rowwise", False),
        ("tensorwise", False),
        ("rowwise_with_gw_hp", False),
        (None, True),
        ("tensorwise", True),
    ],
)  # every valid combination (an explicit rowwise recipe with all-gather is an FP8ConfigError)
def test_fp8ref_never_builds_an_emulating_config(recipe: str | None, all_gather: bool) -> None:
    (handler,) = create_fp8_kwargs(make_args(fp8_recipe=recipe, fp8_enable_fsdp_float8_all_gather=all_gather))
    assert handler.config.emulate is False


def test_custom_filter_that_skips_eligible_layers_is_noted_but_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = make_args()
    (handler,) = create_fp8_kwargs(args)
    # the FQN's last component: under a torch.compile wrapper accelerate passes "_orig_mod.fc1"
    handler.module_filter_func = lambda module, fqn: fqn.rsplit(".", 1)[-1] == "fc1"
    model = nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32))
    model.add_module("fc1", nn.Linear(32, 32))
    accelerator = Accelerator(mixed_precision="fp8", kwargs_handlers=[handler])
    accelerator.prepare(torch.compile(model))  # compiled, so that no C12e notice is due
    with caplog.at_level(logging.INFO, logger="fp8ref"):
        report = verify_fp8_status(accelerator, args)
    assert report.in_effect and report.converted == ("fc1",)
    assert dict(report.skipped)["0"] == "accepted by the filter but not converted"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("fp8ref")]
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
