"""Transformer Engine conversion that honours the module filter and never stops early.

accelerate's ``accelerate.utils.transformer_engine.convert_model`` returns from the whole recursion at the
first ``nn.Linear`` whose dimensions are not divisible by 16, so every later sibling stays in high
precision (contract clause G3), and it converts heads too. :func:`convert_to_transformer_engine` is
what :func:`~fp8ref.patch.patch_accelerator_for_fp8` puts in its place when Transformer Engine is the
backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from fp8ref.module_filter import module_filter as default_module_filter

logger = logging.getLogger(__name__)

ModuleFilterFunc = Callable[[nn.Module, str], bool]


def _te_linear_from(linear: nn.Linear, te: Any) -> nn.Module:
    has_bias = linear.bias is not None
    replacement: nn.Module = te.Linear(
        linear.in_features,
        linear.out_features,
        bias=has_bias,
        params_dtype=linear.weight.dtype,
        device=linear.weight.device,
    )
    with torch.no_grad():
        replacement.get_parameter("weight").copy_(linear.weight)
        if linear.bias is not None:
            replacement.get_parameter("bias").copy_(linear.bias)
    return replacement


def convert_to_transformer_engine(
    model: nn.Module, module_filter: ModuleFilterFunc | None = None, *, prefix: str = ""
) -> list[str]:
    """Replace, in place, every ``nn.Linear`` that ``module_filter`` accepts by a ``te.Linear``.

    Returns the FQNs converted. Layers the filter rejects are kept and their siblings still visited.
    """
    import transformer_engine.pytorch as te

    accept = module_filter or default_module_filter
    converted: list[str] = []
    for name, child in list(model.named_children()):
        fqn = f"{prefix}.{name}" if prefix else name
        if isinstance(child, nn.Linear) and not isinstance(child, te.Linear):
            if accept(child, fqn):
                setattr(model, name, _te_linear_from(child, te))
                converted.append(fqn)
            else:
                logger.debug("Transformer Engine: keeping %s in high precision", fqn)
        else:
            converted += convert_to_transformer_engine(child, accept, prefix=fqn)
    return converted


def make_accelerate_converter(
    original: Callable[..., Any], module_filter: ModuleFilterFunc | None
) -> Callable[..., Any]:
    """A drop-in for ``accelerate``'s ``convert_model`` that converts with fp8ref's rules."""

    def convert_model(
        model: nn.Module, to_transformer_engine: bool = True, _convert_linear: bool = True, _convert_ln: bool = True
    ) -> None:
        if not to_transformer_engine or not _convert_linear:
            original(model, to_transformer_engine, _convert_linear, _convert_ln)
            return
        converted = convert_to_transformer_engine(model, module_filter)
        logger.info("Transformer Engine: converted %d linear layers", len(converted))

    convert_model.__fp8ref_original__ = original  # type: ignore[attr-defined]
    return convert_model
