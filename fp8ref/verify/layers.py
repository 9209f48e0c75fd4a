"""Which modules are FP8 layers, which of them only emulate float8, and the prepared models' layers by name."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import torch.nn as nn

# FQN components that wrappers insert inside a model (FSDP1, activation checkpointing, torch.compile).
_WRAPPER_COMPONENTS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})
# Transformer Engine modules that run FP8 GEMMs (te.LayerNorm and te.RMSNorm do not).
_TE_GEMM_MODULES = frozenset({"Linear", "LayerNormLinear", "LayerNormMLP", "GroupedLinear"})


def clean_fqn(fqn: str) -> str:
    """``fqn`` without the components that wrappers insert (``_orig_mod``, ``_fsdp_wrapped_module``, ...)."""
    return ".".join(part for part in fqn.split(".") if part not in _WRAPPER_COMPONENTS)


def fp8_layer_classes() -> tuple[type, ...]:
    """torchao's FP8 layer class, if torchao was imported (nothing is imported here: a backend that was
    never imported cannot have built a layer). Transformer Engine layers are recognised by name."""
    classes: list[type] = []
    torchao_linear = sys.modules.get("torchao.float8.float8_linear")
    if torchao_linear is not None and hasattr(torchao_linear, "Float8Linear"):
        classes.append(torchao_linear.Float8Linear)
    return tuple(classes)


def is_te_gemm_module(module: nn.Module) -> bool:
    cls = type(module)
    return cls.__module__.startswith("transformer_engine.") and cls.__name__ in _TE_GEMM_MODULES


def is_fp8_layer(module: nn.Module, fp8_classes: tuple[type, ...] | None = None) -> bool:
    """Whether ``module`` runs its GEMMs in FP8: a torchao ``Float8Linear`` or a Transformer Engine GEMM
    module (``te.LayerNorm`` and ``te.RMSNorm`` are not). ``fp8_classes`` caches the class lookup."""
    classes = fp8_layer_classes() if fp8_classes is None else fp8_classes
    return (bool(classes) and isinstance(module, classes)) or is_te_gemm_module(module)


def emulates_float8(module: nn.Module) -> bool:
    """Whether an FP8 layer only emulates float8: a torchao ``Float8Linear`` whose config has ``emulate=True``
    casts to float8 and back, then multiplies in high precision. No float8 GEMM runs, so it brings extra casts
    and no speedup: fp8ref never counts it as FP8 in effect."""
    return config_emulates(getattr(module, "config", None))


def config_emulates(config: Any) -> bool:
    """Whether a torchao ``Float8LinearConfig`` (or any object with an ``emulate`` field) emulates float8."""
    return bool(getattr(config, "emulate", False))


def prepared_models(accelerator: Any) -> list[nn.Module]:
    """The prepared models, without their DDP, DeepSpeed or torch.compile wrappers."""
    models = [m for m in getattr(accelerator, "_models", None) or [] if isinstance(m, nn.Module)]
    unwrap = getattr(accelerator, "unwrap_model", None)
    return [_unwrapped(unwrap, m) if callable(unwrap) else m for m in models]


#: The wrappers ``Accelerator.unwrap_model`` takes off, by class name (none of their packages is imported here).
_PARALLEL_WRAPPERS = ("DistributedDataParallel", "DataParallel", "DeepSpeedEngine", "FullyShardedDataParallel")


def _unwrapped(unwrap: Any, model: nn.Module) -> nn.Module:
    """``accelerator.unwrap_model(model)``, also where that crashes on a model that contains a compiled module without
    being compiled itself (accelerate 1.11 reads ``model.__dict__["_orig_mod"]`` then: the known upstream defect
    ``accelerate-unwrap-model-compiled-submodule``): there the parallel wrappers are taken off here."""
    try:
        unwrapped: nn.Module = unwrap(model)
        return unwrapped
    except KeyError as exc:
        if exc.args != ("_orig_mod",) or "_orig_mod" in vars(model):
            raise
    inner = getattr(model, "module", None)
    while type(model).__name__ in _PARALLEL_WRAPPERS and isinstance(inner, nn.Module):
        model, inner = inner, getattr(inner, "module", None)
    return model


def walk(models: Iterable[nn.Module]) -> Iterator[tuple[str, nn.Module]]:
    """Every module of ``models`` with its clean FQN (``model1:...`` for the second model on)."""
    for index, model in enumerate(models):
        for fqn, module in model.named_modules():
            name = clean_fqn(fqn)
            yield (f"model{index}:{name}" if index else name), module
