"""C5 torchao recipe (C5e: it never emulates float8), C6 FSDP float8 all-gather, C7 Transformer Engine recipe.

An emulated ``Float8Linear`` (``Float8LinearConfig(emulate=True)``) casts to float8 and back, then multiplies in
high precision: float8 numerics, extra casts, no float8 kernel. FP8 looks on and never pays. The C11 tests emulate
on purpose, for speed on the CPU: they check numerics, not this.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from .implementation import Implementation
from .kit.contract import fp8_arguments
from .kit.logs import capture_logs
from .kit.standin_te import standin_te

TORCHAO_BACKENDS = ["torchao", "auto"]


def _only_handler(impl: Implementation, args: Any) -> Any:
    handlers = impl.create_fp8_kwargs(args)
    assert isinstance(handlers, list), f"create_fp8_kwargs returned {type(handlers).__name__}, not a list"
    assert len(handlers) == 1, f"expected exactly one handler, got {handlers!r}"
    return handlers[0]


def _granularities(config: Any) -> dict[str, Any]:
    return {
        name: getattr(config, name).scaling_granularity
        for name in ("cast_config_input", "cast_config_weight", "cast_config_grad_output")
    }


# --------------------------------------------------------------------------- C5


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c5_torchao_gives_one_ao_recipe_kwargs(impl: Implementation, backend: str) -> None:
    from accelerate.utils import AORecipeKwargs

    handler = _only_handler(impl, fp8_arguments(fp8=True, backend=backend))
    # accelerate dispatches handlers by exact class, so a subclass would not be recognised.
    assert type(handler) is AORecipeKwargs, f"handler is {type(handler).__qualname__}, not AORecipeKwargs"


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c5_config_is_float8_linear_config_and_filter_is_callable(impl: Implementation, backend: str) -> None:
    from torchao.float8 import Float8LinearConfig

    handler = _only_handler(impl, fp8_arguments(fp8=True, backend=backend))
    assert isinstance(handler.config, Float8LinearConfig), f"config is {handler.config!r}"
    assert callable(handler.module_filter_func), f"module_filter_func is {handler.module_filter_func!r}"


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c5_default_recipe_is_rowwise(impl: Implementation, backend: str) -> None:
    from torchao.float8.config import ScalingGranularity

    handler = _only_handler(impl, fp8_arguments(fp8=True, backend=backend, all_gather=False))
    granularities = _granularities(handler.config)
    wrong = {k: v for k, v in granularities.items() if v is not ScalingGranularity.AXISWISE}
    assert not wrong, f"not rowwise (AXISWISE expected) for: {wrong}"


# --------------------------------------------------------------------------- C5e

#: value: the all-gather flag that selects the recipe
RECIPES = {"rowwise": False, "tensorwise": True}
C5E_BACKENDS = ["torchao", "auto"]


def _assert_does_not_emulate(config: Any, what: str) -> None:
    from torchao.float8 import Float8LinearConfig

    assert isinstance(config, Float8LinearConfig), f"{what}: config is {config!r}, not a Float8LinearConfig"
    assert config.emulate is False, (
        f"{what}: the Float8LinearConfig has emulate={config.emulate!r}; emulated float8 runs high-precision "
        "matmuls after a simulated cast, so FP8 never pays"
    )


@pytest.mark.parametrize("backend", C5E_BACKENDS)
def test_c5e_default_rowwise_config_does_not_emulate(impl: Implementation, backend: str) -> None:
    (handler,) = impl.create_fp8_kwargs(fp8_arguments(fp8=True, backend=backend, all_gather=False))
    _assert_does_not_emulate(handler.config, f"create_fp8_kwargs(fp8_backend={backend!r})")


@pytest.mark.parametrize("backend", C5E_BACKENDS)
def test_c5e_all_gather_tensorwise_config_does_not_emulate(impl: Implementation, backend: str) -> None:
    (handler,) = impl.create_fp8_kwargs(fp8_arguments(fp8=True, backend=backend, all_gather=True))
    _assert_does_not_emulate(handler.config, f"create_fp8_kwargs(fp8_backend={backend!r}, all-gather flag)")


# --------------------------------------------------------------------------- C6


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c6_all_gather_flag_gives_tensorwise_config_with_all_gather(impl: Implementation, backend: str) -> None:
    from torchao.float8.config import ScalingGranularity

    handler = _only_handler(impl, fp8_arguments(fp8=True, backend=backend, all_gather=True))
    assert handler.config.enable_fsdp_float8_all_gather is True, (
        "fp8_enable_fsdp_float8_all_gather=True was dropped: the config has enable_fsdp_float8_all_gather="
        f"{handler.config.enable_fsdp_float8_all_gather!r}"
    )
    wrong = {k: v for k, v in _granularities(handler.config).items() if v is not ScalingGranularity.TENSORWISE}
    assert not wrong, f"the all-gather recipe is not tensorwise for: {wrong}"


_TENSORWISE_WORDS = re.compile(r"tensor[-_ ]?wise|per[-_ ]tensor", re.IGNORECASE)


def test_c6_switch_to_tensorwise_is_logged_at_info_or_above(impl: Implementation) -> None:
    """The switch of recipe must be visible: a record at INFO or above that names the tensorwise recipe."""
    with capture_logs() as logs:
        impl.create_fp8_kwargs(fp8_arguments(fp8=True, backend="torchao", all_gather=True))
    naming = [r for r in logs.at_least(logging.INFO) if _TENSORWISE_WORDS.search(r.getMessage())]
    assert naming, f"no INFO+ record names the switch to tensorwise; records: {logs.describe(logging.INFO)}"


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c6_flag_false_gives_all_gather_disabled(impl: Implementation, backend: str) -> None:
    handler = _only_handler(impl, fp8_arguments(fp8=True, backend=backend, all_gather=False))
    assert handler.config.enable_fsdp_float8_all_gather is False


# --------------------------------------------------------------------------- C7


def _is_te_handler(name: str, backend: Any) -> bool:
    """C7's two handler classes: ``TERecipeKwargs``, or the deprecated ``FP8RecipeKwargs(backend="TE")`` (in
    accelerate 1.15 the only one its DeepSpeed path reads)."""
    return name == "TERecipeKwargs" or (name == "FP8RecipeKwargs" and str(backend) == "TE")


def _assert_te_recipe(handler: Any) -> None:
    import accelerate.utils

    name = type(handler).__name__
    known = {getattr(accelerate.utils, n, None) for n in ("TERecipeKwargs", "FP8RecipeKwargs")} - {None}
    assert type(handler) in known and _is_te_handler(name, getattr(handler, "backend", None)), (
        f"handler is {type(handler).__qualname__} (backend={getattr(handler, 'backend', None)!r}); C7 asks for "
        "accelerate's TERecipeKwargs or FP8RecipeKwargs(backend='TE')"
    )
    assert (handler.fp8_format, handler.amax_history_len, handler.amax_compute_algo) == ("HYBRID", 16, "max"), (
        f"TE recipe is fp8_format={handler.fp8_format!r}, amax_history_len={handler.amax_history_len!r}, "
        f"amax_compute_algo={handler.amax_compute_algo!r}; expected HYBRID, 16, max"
    )


def test_c7_te_gives_one_te_recipe_hybrid_16_max(impl: Implementation, standin_te_dir: Path) -> None:
    """Uses the suite's stand-in transformer_engine (no kernels): it only lets accelerate build the
    TE recipe on a machine without TE. This is recipe construction only, never a G clause."""
    with standin_te(standin_te_dir):
        handler = _only_handler(impl, fp8_arguments(fp8=True, backend="te"))
        _assert_te_recipe(handler)


#: What the tests of this module read from the probe of ``auto`` without torchao (the ``te_by_auto`` fixture).
TE_BY_AUTO_NEEDS = "create_fp8_kwargs"


def test_c7_auto_resolves_to_te_when_torchao_is_missing(te_by_auto: dict[str, dict[str, Any]]) -> None:
    """Stand-in transformer_engine (recipe construction only; never a G clause), torchao hidden."""
    result = te_by_auto["create-auto"]
    assert result["ok"], f"create_fp8_kwargs(auto) raised {result.get('exc_type')}: {result.get('message')}"
    handlers = result["handlers"]
    assert len(handlers) == 1, f"expected one handler, got {handlers}"
    got = handlers[0]
    assert _is_te_handler(got["name"], got.get("backend")), (
        f"auto without torchao gave {got['name']} (backend={got.get('backend')!r}), not TERecipeKwargs or "
        "FP8RecipeKwargs(backend='TE')"
    )
    assert (got["fp8_format"], got["amax_history_len"], got["amax_compute_algo"]) == ("HYBRID", 16, "max"), got
