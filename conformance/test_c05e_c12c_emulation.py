"""C5e: the torchao config never emulates float8. C12c: verify warns (or raises) when the FP8 layers in
effect emulate.

An emulated ``Float8Linear`` (``Float8LinearConfig(emulate=True)``) casts to float8 and back, then multiplies
in high precision: float8 numerics, extra casts, no float8 kernel. FP8 looks on and never pays. The C11 tests
emulate on purpose, for speed on the CPU: they check numerics, not this.

Only the five contract functions, accelerate, torch and torchao are used.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import env_snapshot, fp8_env_prefixes, make_args
from .scenarios import ao_handler_of, fp8_accelerator, mixed_model, with_emulation
from .verify_outcome import assert_loud, assert_quiet, call_verify

RECIPES = {"rowwise": False, "tensorwise": True}  # value: the all-gather flag that selects the recipe
TORCHAO_BACKENDS = ["torchao", "auto"]


def _assert_does_not_emulate(config: Any, what: str) -> None:
    from torchao.float8 import Float8LinearConfig

    assert isinstance(config, Float8LinearConfig), f"{what}: config is {config!r}, not a Float8LinearConfig"
    assert config.emulate is False, (
        f"{what}: the Float8LinearConfig has emulate={config.emulate!r}; emulated float8 runs high-precision "
        "matmuls after a simulated cast, so FP8 never pays"
    )


@contextlib.contextmanager
def _patched(impl: types.ModuleType, args: Any) -> Iterator[None]:
    """configure, then patch, in a clean FP8 environment (the plugin puts the Accelerator class back)."""
    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        impl.configure_fp8_environment(args)
        impl.patch_accelerator_for_fp8()
        yield


# --------------------------------------------------------------------------- C5e


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c5e_default_rowwise_config_does_not_emulate(impl: types.ModuleType, backend: str) -> None:
    (handler,) = impl.create_fp8_kwargs(make_args(fp8=True, backend=backend, all_gather=False))
    _assert_does_not_emulate(handler.config, f"create_fp8_kwargs(fp8_backend={backend!r})")


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c5e_all_gather_tensorwise_config_does_not_emulate(impl: types.ModuleType, backend: str) -> None:
    (handler,) = impl.create_fp8_kwargs(make_args(fp8=True, backend=backend, all_gather=True))
    _assert_does_not_emulate(handler.config, f"create_fp8_kwargs(fp8_backend={backend!r}, all-gather flag)")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c5e_patch_injected_recipe_does_not_emulate(impl: types.ModuleType, recipe: str) -> None:
    """The handler the patch injects into ``Accelerator()``, and the layers ``prepare`` builds from it."""
    import accelerate
    from torchao.float8.float8_linear import Float8Linear

    args = make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    with _patched(impl, args):
        acc = accelerate.Accelerator()
        _assert_does_not_emulate(ao_handler_of(acc).config, f"the {recipe} handler injected by the patch")
        model = acc.unwrap_model(acc.prepare(mixed_model()))
        layers = {name: m for name, m in model.named_modules() if isinstance(m, Float8Linear)}
        assert layers, "precondition: prepare converted no layer (see C10, C13)"
        emulating = sorted(name for name, m in layers.items() if m.config.emulate)
        assert not emulating, f"Float8Linear layers built through the patch emulate: {emulating}"


# --------------------------------------------------------------------------- C12c


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c12c_warns_when_fp8_layers_emulate(impl: types.ModuleType, recipe: str) -> None:
    """The implementation's own handler with its config replaced by an emulating one (same filter): FP8
    layers are there and ``fp8_enabled`` is true, but no float8 matmul runs."""
    import accelerate
    from torchao.float8.float8_linear import Float8Linear

    args = make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    acc = accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=with_emulation(impl, args))
    model = acc.unwrap_model(acc.prepare(mixed_model()))
    layers = [m for m in model.modules() if isinstance(m, Float8Linear)]
    assert acc.fp8_enabled and layers and all(m.config.emulate for m in layers), "precondition: emulated layers"
    assert_loud(call_verify(impl, acc, args), "every FP8 layer in effect emulates float8 (emulate=True)")


def test_c12c_same_model_without_emulation_is_quiet(impl: types.ModuleType) -> None:
    """The control of C12c: the same model and handler with the implementation's own config gives no
    WARNING, so the warning above is about emulation and nothing else."""
    args = make_args(fp8=True, backend="torchao")
    acc = fp8_accelerator(impl, args)
    acc.prepare(mixed_model())
    assert_quiet(call_verify(impl, acc, args), "FP8 layers that do not emulate are in effect")
