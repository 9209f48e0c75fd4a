"""Optimizers that follow the weights torchao replaces: the wrap of ``Accelerator._prepare_ao`` that
:func:`~fp8ref.patch.patch_accelerator_for_fp8` installs."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("fp8ref.patch")


def _remap_optimizers(mapping: dict[Any, Any], optimizers: list[Any]) -> int:
    moved = 0
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            params = group["params"]
            group["params"] = [mapping.get(param, param) for param in params]
            moved += sum(param in mapping for param in params)
        for old, new in mapping.items():
            if old in optimizer.state:
                optimizer.state[new] = optimizer.state.pop(old)
    return moved


def prepare_ao_keeping_optimizers(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``Accelerator._prepare_ao`` so that optimizers follow the parameters torchao replaces.

    With ``enable_fsdp_float8_all_gather`` torchao wraps each converted weight in a new ``Parameter``.
    accelerate remaps optimizers for Transformer Engine and FSDP2 but not here, so outside FSDP an
    optimizer built before ``prepare`` keeps the old parameters and silently never updates the model.
    """

    @functools.wraps(original)
    def _prepare_ao(self: Any, *args: Any) -> Any:
        import torch

        models = [arg for arg in args if isinstance(arg, torch.nn.Module)]
        before = [dict(model.named_parameters(remove_duplicate=False)) for model in models]
        result = original(self, *args)
        mapping: dict[Any, Any] = {}
        for model, old_params in zip(models, before, strict=True):
            new_params = dict(model.named_parameters(remove_duplicate=False))
            for name, old in old_params.items():
                new = new_params.get(name)
                if new is not None and new is not old:
                    mapping[old] = new
        optimizers = [arg for arg in args if isinstance(arg, torch.optim.Optimizer)]
        if mapping and optimizers:
            moved = _remap_optimizers(mapping, optimizers)
            logger.info("fp8ref: pointed %d optimizer parameters at the weights torchao replaced", moved)
        return result

    return _prepare_ao
