"""Whether FP8 pays for this setup: ``fp8ref plan``'s roofline bound of the linear layers' speedup, for the layers
the accelerator will really convert, in the mode the run will use (compiled or eager) and in the other beside it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from fp8ref.config import TorchaoRecipe
from fp8ref.plan import ConversionPlan, plan_model
from fp8ref.roofline import GPUSpec

MODES = ("compiled", "eager")


@dataclass(frozen=True)
class Payoff:
    """The bound in each mode, for the layers converted (``None`` when FP8 converts nothing)."""

    gpu: str
    tokens: int
    recipe: str
    configured_mode: str
    bounds: dict[str, float]
    #: The bound had FP8 been on with fp8ref's filter (plan's own), when it is off here.
    bounds_if_on: dict[str, float] | None
    fp8_flop_share: float

    @property
    def configured(self) -> float:
        return self.bounds[self.configured_mode]

    @property
    def other_mode(self) -> str:
        return next(mode for mode in MODES if mode != self.configured_mode)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "tokens_per_gemm": self.tokens,
            "recipe": self.recipe,
            "configured_mode": self.configured_mode,
            "bound": {mode: round(value, 4) for mode, value in self.bounds.items()},
            "bound_if_fp8_on_with_fp8ref_filter": None
            if self.bounds_if_on is None
            else {mode: round(value, 4) for mode, value in self.bounds_if_on.items()},
            "fp8_flop_share": round(self.fp8_flop_share, 6),
        }


def plan_both_modes(model: nn.Module, *, recipe: str, tokens: int, gpu: GPUSpec) -> dict[str, ConversionPlan]:
    """``fp8ref plan`` of the unconverted model, in both modes (call before the conversion runs)."""
    return {mode: plan_model(model, recipe=recipe, tokens=tokens, gpu=gpu, mode=mode) for mode in MODES}


def bound_recipe(backend: str | None, recipe: str | None) -> str:
    """The torchao recipe whose roofline stands for the run's: the AO recipe in effect; tensorwise for Transformer
    Engine's per-tensor DelayedScaling; rowwise otherwise."""
    if backend == "TE":
        return TorchaoRecipe.TENSORWISE.value
    name = (recipe or "").split(" ")[0]
    return name if name in {r.value for r in TorchaoRecipe} else TorchaoRecipe.ROWWISE.value


def payoff(plans: dict[str, ConversionPlan], converted: set[str], *, configured_mode: str, fp8_on: bool) -> Payoff:
    """The bound of each mode with exactly the layers in ``converted`` (clean FQNs) in FP8."""
    bounds: dict[str, float] = {}
    share = 0.0
    for mode, plan in plans.items():
        layers = tuple(dataclasses.replace(layer, convert=fp8_on and layer.fqn in converted) for layer in plan.layers)
        real = dataclasses.replace(plan, layers=layers)
        bounds[mode] = real.predicted_linear_speedup
        share = real.fp8_flop_share
    first = plans[MODES[0]]
    return Payoff(
        gpu=first.gpu,
        tokens=first.tokens,
        recipe=first.recipe,
        configured_mode=configured_mode,
        bounds=bounds,
        bounds_if_on=None if fp8_on else {mode: plan.predicted_linear_speedup for mode, plan in plans.items()},
        fp8_flop_share=share,
    )
