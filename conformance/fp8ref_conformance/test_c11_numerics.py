"""C11 numerics of a model converted as in C10, against the same model unconverted in bf16.

The CPU float8 matmul (``torch._scaled_mm``) is real but very slow, so the real-kernel checks use
64-wide layers; the larger shape uses ``emulate=True`` (the implementation's config with
``dataclasses.replace(config, emulate=True)``, same filter).
"""

from __future__ import annotations

import types

import pytest
from torchao.float8.config import ScalingGranularity

from .kit.accelerators import with_emulation
from .kit.contract import make_args
from .kit.numerics import FORWARD_SQNR_DB, assert_numerics, run_numerics

# value: the all-gather flag; tensorwise is the config the implementation returns with the flag set.
RECIPES = {"rowwise": False, "tensorwise": True}
GRANULARITY = {"rowwise": ScalingGranularity.AXISWISE, "tensorwise": ScalingGranularity.TENSORWISE}


def _check_recipe(impl: types.ModuleType, recipe: str) -> None:
    (handler,) = impl.create_fp8_kwargs(make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe]))
    got = handler.config.cast_config_weight.scaling_granularity
    if got is not GRANULARITY[recipe]:
        pytest.fail(f"cannot judge {recipe} numerics: the implementation's config has {got} weights (see C5/C6)")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c11_real_float8_kernels_match_bf16(impl: types.ModuleType, recipe: str) -> None:
    """Real CPU float8 kernels, 64-128-64 bf16 MLP: forward SQNR, gradients, 20 AdamW steps."""
    _check_recipe(impl, recipe)
    result = run_numerics(impl, make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe]))
    assert_numerics(result)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c11_emulated_larger_shapes_match_bf16(impl: types.ModuleType, recipe: str) -> None:
    """256-512-256 with ``emulate=True`` (the implementation's config and filter, emulated matmul)."""
    _check_recipe(impl, recipe)
    args = make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    result = run_numerics(impl, args, widths=(256, 512, 256), handlers=with_emulation(impl, args), steps=20)
    assert result.forward_sqnr >= FORWARD_SQNR_DB
    assert_numerics(result)
