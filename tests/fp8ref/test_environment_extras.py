"""configure_fp8_environment's extras: what it returns, the compatibility variables, the context
manager, and rebuilding the request from the environment."""

from __future__ import annotations

import logging
import os
import sys
import types

import pytest

from fp8ref import Backend, FP8ConfigError, configure_fp8_environment, fp8_environment, is_accelerator_patched
from fp8ref.variables import settings_from_environment

from .conftest import make_args


def test_returns_only_what_it_changed() -> None:
    os.environ["ACCELERATE_MIXED_PRECISION"] = "fp8"
    changed = configure_fp8_environment(make_args())
    assert "ACCELERATE_MIXED_PRECISION" not in changed
    assert changed["ACCELERATE_FP8_BACKEND"] == "AO"
    assert configure_fp8_environment(make_args()) == {}


def test_sets_the_seed_compatibility_variables_too() -> None:
    configure_fp8_environment(make_args(fp8_enable_fsdp_float8_all_gather=True))
    assert os.environ["FP8_BACKEND"] == "torchao"
    assert os.environ["FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER"] == "true"
    assert os.environ["FP8_RECIPE"] == "tensorwise"


@pytest.mark.parametrize("te_installed", [False, True], ids=["te-absent", "te-present"])
def test_te_sets_accelerates_recipe_defaults_to_fp8refs_recipe(
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    te_installed: bool,
) -> None:
    """Whatever this machine has: TE is the suite's stand-in (importable, with installed metadata) or absent
    (``sys.modules`` entry ``None``) for the test."""
    if te_installed:
        request.getfixturevalue("standin_te")
    else:
        for name in ("transformer_engine", "transformer_engine.pytorch"):
            monkeypatch.setitem(sys.modules, name, None)
    with caplog.at_level(logging.WARNING):
        configure_fp8_environment(make_args(fp8_backend="te"))
    assert os.environ["ACCELERATE_FP8_BACKEND"] == "TE"
    assert os.environ["ACCELERATE_FP8_FORMAT"] == "HYBRID"
    assert os.environ["ACCELERATE_FP8_AMAX_HISTORY_LEN"] == "16"
    assert os.environ["ACCELERATE_FP8_AMAX_COMPUTE_ALGO"] == "max"
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # Without TE the user is told at once, not at Accelerator() time; with TE nothing is said.
    assert any("transformer-engine" in m for m in warned) is not te_installed, warned
    # With TE the Accelerator is patched; without it only the C8g fix is in, and Accelerator() fails loudly.
    assert is_accelerator_patched() is te_installed


def test_te_importable_but_unusable_for_accelerate_warns_instead_of_raising(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TE imports, but accelerate cannot build ``TERecipeKwargs`` (no installed metadata): configure still sets
    the environment and warns, it does not raise (only invalid arguments raise)."""
    import accelerate.utils

    def unusable(**kwargs: object) -> None:
        raise ImportError("TransformerEngine is not available. Please install it or use a different backend.")

    for name in ("transformer_engine", "transformer_engine.pytorch"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(accelerate.utils, "TERecipeKwargs", unusable)
    with caplog.at_level(logging.WARNING):
        configure_fp8_environment(make_args(fp8_backend="te"))
    assert os.environ["ACCELERATE_FP8_BACKEND"] == "TE"
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("accelerate cannot find transformer-engine" in m and "will fail" in m for m in warned), warned
    assert not is_accelerator_patched()


def test_disabled_request_changes_nothing_and_returns_empty() -> None:
    before = dict(os.environ)
    assert configure_fp8_environment(make_args(fp8=False)) == {}
    assert dict(os.environ) == before


def test_context_manager_restores_previous_values_even_on_error() -> None:
    os.environ["ACCELERATE_FP8_BACKEND"] = "TE"
    os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
    with pytest.raises(RuntimeError), fp8_environment(make_args()) as changed:
        assert os.environ["ACCELERATE_FP8_BACKEND"] == "AO"
        assert changed["ACCELERATE_MIXED_PRECISION"] == "fp8"
        raise RuntimeError("training crashed")
    assert os.environ["ACCELERATE_FP8_BACKEND"] == "TE"
    assert "ACCELERATE_MIXED_PRECISION" not in os.environ


def test_environment_round_trips_to_the_same_settings() -> None:
    args = make_args(fp8_enable_fsdp_float8_all_gather=True, fp8_auto_filter=True)
    configure_fp8_environment(args)
    settings = settings_from_environment()
    assert settings.backend is Backend.TORCHAO
    assert settings.enable_fsdp_float8_all_gather and settings.auto_filter
    assert settings.effective_recipe.value == "tensorwise"


def test_settings_from_environment_refuses_a_non_fp8_environment() -> None:
    with pytest.raises(FP8ConfigError, match="configure_fp8_environment"):
        settings_from_environment({"ACCELERATE_MIXED_PRECISION": "bf16"})
    with pytest.raises(FP8ConfigError, match="'AO'"):
        settings_from_environment({"ACCELERATE_MIXED_PRECISION": "fp8", "ACCELERATE_FP8_BACKEND": "MSAMP"})


def test_configure_hands_its_request_to_the_patch_not_through_the_environment() -> None:
    """The patch builds the recipe configure parsed: a later change of ``FP8_RECIPE`` does not reach it."""
    from accelerate import Accelerator

    configure_fp8_environment(make_args(fp8_recipe="tensorwise"))
    os.environ["FP8_RECIPE"] = "rowwise"
    handler = Accelerator().ao_recipe_handler
    assert handler.config.cast_config_weight.scaling_granularity.value == "tensorwise"


def test_context_manager_leaves_everything_as_it_was_for_an_invalid_request() -> None:
    before = dict(os.environ)
    args = make_args(fp8_enable_fsdp_float8_all_gather=True, deepspeed={"zero_optimization": {"stage": 2}})
    with pytest.raises(FP8ConfigError, match="DeepSpeed"), fp8_environment(args):
        pass
    assert dict(os.environ) == before and not is_accelerator_patched()
