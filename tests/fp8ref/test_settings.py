"""FP8Settings: the typed, validated view of the training arguments."""

from __future__ import annotations

import types

import pytest

from fp8ref import Backend, FP8ConfigError, FP8Settings, TorchaoRecipe


def test_missing_attributes_take_the_documented_defaults() -> None:
    settings = FP8Settings.from_training_args(object())
    assert settings == FP8Settings(enabled=False, backend=Backend.AUTO, recipe=None)
    assert settings.effective_recipe is TorchaoRecipe.ROWWISE


@pytest.mark.parametrize("name", ["TE", "Te", " torchao ", "AUTO", "TorchAO"])
def test_backend_names_are_case_insensitive(name: str) -> None:
    settings = FP8Settings.from_training_args(types.SimpleNamespace(fp8=True, fp8_backend=name))
    assert settings.backend.value == name.strip().lower()


@pytest.mark.parametrize("bad", ["tee", "transformer_engine", "", 3, ["te"]])
def test_unknown_backend_is_a_config_error_listing_the_valid_names(bad: object) -> None:
    with pytest.raises(FP8ConfigError) as info:
        FP8Settings.from_training_args(types.SimpleNamespace(fp8=True, fp8_backend=bad))
    assert isinstance(info.value, ValueError)
    for valid in ("'auto'", "'torchao'", "'te'"):
        assert valid in str(info.value)


def test_unknown_recipe_lists_the_valid_recipes() -> None:
    with pytest.raises(FP8ConfigError, match="rowwise_with_gw_hp"):
        FP8Settings.from_training_args(types.SimpleNamespace(fp8=True, fp8_recipe="columnwise"))


@pytest.mark.parametrize("value", ["true", "yes", 2, 0.5])
def test_fp8_flag_must_be_a_bool(value: object) -> None:
    with pytest.raises(FP8ConfigError, match="must be a bool"):
        FP8Settings.from_training_args(types.SimpleNamespace(fp8=value))


def test_all_gather_switches_the_default_recipe_to_tensorwise() -> None:
    settings = FP8Settings.from_training_args(types.SimpleNamespace(fp8=True, fp8_enable_fsdp_float8_all_gather=True))
    assert settings.recipe is None
    assert settings.effective_recipe is TorchaoRecipe.TENSORWISE


@pytest.mark.parametrize("recipe", ["rowwise", "rowwise_with_gw_hp"])
def test_explicit_rowwise_with_all_gather_is_refused_with_the_fix(recipe: str) -> None:
    with pytest.raises(FP8ConfigError, match="fp8_recipe='tensorwise'"):
        FP8Settings.from_training_args(
            types.SimpleNamespace(fp8=True, fp8_recipe=recipe, fp8_enable_fsdp_float8_all_gather=True)
        )


def test_explicit_recipe_is_kept() -> None:
    settings = FP8Settings.from_training_args(types.SimpleNamespace(fp8=True, fp8_recipe="Rowwise_With_GW_HP"))
    assert settings.effective_recipe is TorchaoRecipe.ROWWISE_WITH_GW_HP


def test_settings_are_frozen() -> None:
    settings = FP8Settings(enabled=True)
    with pytest.raises(AttributeError):
        settings.enabled = False  # type: ignore[misc]


def test_accelerate_names_map_back_to_the_backend() -> None:
    for backend in (Backend.TORCHAO, Backend.TE):
        assert Backend.from_accelerate_name(backend.accelerate_name) is backend
    assert Backend.from_accelerate_name("MSAMP") is None


def test_runs_deepspeed_reads_the_distributed_type() -> None:
    from fp8ref.deepspeed_check import runs_deepspeed

    assert runs_deepspeed(types.SimpleNamespace(distributed_type="DistributedType.DEEPSPEED"))
    assert not runs_deepspeed(types.SimpleNamespace(distributed_type="DistributedType.MULTI_GPU"))
    assert not runs_deepspeed(object())
