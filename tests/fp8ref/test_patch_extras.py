"""patch_accelerator_for_fp8's extras: reading the environment, unpatching, and argument handling."""

from __future__ import annotations

import pytest
from accelerate import Accelerator
from accelerate.utils import AORecipeKwargs, DistributedDataParallelKwargs
from torch import nn

from fp8ref import (
    FP8ConfigError,
    ModuleFilter,
    SizeThreshold,
    TorchaoRecipe,
    configure_fp8_environment,
    is_accelerator_patched,
    patch_accelerator_for_fp8,
    unpatch_accelerator_for_fp8,
)

from .conftest import make_args

#: A layer whose verdict differs between the two thresholds: 8192 -> 2048 is too small for rowwise
#: (``N <= 2048``) and large enough for tensorwise (``K > 4096``).
_SPLITS_RECIPES = (8192, 2048)


@pytest.mark.parametrize(
    ("overrides", "recipe"),
    [
        ({"fp8_enable_fsdp_float8_all_gather": True}, TorchaoRecipe.TENSORWISE),
        ({}, TorchaoRecipe.ROWWISE),
        ({"fp8_recipe": "tensorwise"}, TorchaoRecipe.TENSORWISE),
    ],
    ids=["all-gather-tensorwise", "default-rowwise", "named-tensorwise"],
)
def test_without_arguments_it_reads_the_configured_environment(
    overrides: dict[str, object], recipe: TorchaoRecipe
) -> None:
    """The size threshold is the one of the recipe the environment implies, not any threshold."""
    configure_fp8_environment(make_args(fp8_auto_filter=True, **overrides))
    patch_accelerator_for_fp8()
    accelerator = Accelerator()
    handler = accelerator.ao_recipe_handler
    assert isinstance(handler, AORecipeKwargs)
    assert handler.config.enable_fsdp_float8_all_gather is bool(overrides.get("fp8_enable_fsdp_float8_all_gather"))
    assert handler.module_filter_func == ModuleFilter(size_threshold=SizeThreshold(recipe))
    splitting = nn.Linear(*_SPLITS_RECIPES, device="meta")
    assert handler.module_filter_func(splitting, "layers.0.mlp.down_proj") is (recipe is TorchaoRecipe.TENSORWISE)
    assert handler.module_filter_func(nn.Linear(64, 64, device="meta"), "layers.0.mlp.up_proj") is False


def test_without_arguments_or_environment_it_says_what_to_do() -> None:
    with pytest.raises(FP8ConfigError, match="configure_fp8_environment"):
        patch_accelerator_for_fp8()
    assert not is_accelerator_patched()


def test_with_arguments_it_needs_no_environment() -> None:
    patch_accelerator_for_fp8(make_args(fp8_recipe="tensorwise"))
    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs()])
    assert accelerator.fp8_enabled
    assert accelerator.ao_recipe_handler.config.cast_config_weight.scaling_granularity.value == "tensorwise"


def test_unpatch_restores_the_original_init() -> None:
    original = Accelerator.__init__
    patch_accelerator_for_fp8(make_args())
    assert is_accelerator_patched() and Accelerator.__init__ is not original
    assert unpatch_accelerator_for_fp8() is True
    assert Accelerator.__init__ is original and not is_accelerator_patched()
    assert unpatch_accelerator_for_fp8() is False
    assert Accelerator().fp8_enabled is False


def test_repatching_updates_the_request_without_wrapping_twice() -> None:
    patch_accelerator_for_fp8(make_args())
    first = Accelerator.__init__
    patch_accelerator_for_fp8(make_args(fp8_recipe="tensorwise"))
    assert Accelerator.__init__ is first
    granularity = Accelerator().ao_recipe_handler.config.cast_config_input.scaling_granularity.value
    assert granularity == "tensorwise"


def test_mixed_precision_passed_by_the_trainer_is_overridden_to_fp8() -> None:
    patch_accelerator_for_fp8(make_args())
    assert Accelerator(mixed_precision="bf16").fp8_enabled
    # positional arguments are bound to their names, not lost
    assert Accelerator(True, False, "no").fp8_enabled


def test_disabled_request_leaves_accelerator_alone() -> None:
    patch_accelerator_for_fp8(make_args(fp8=False))
    assert not is_accelerator_patched()
