"""The Transformer Engine recipe in effect where TE layers run (C14b, C16d, G5): what TE's FP8 state says at each
forward of a ``transformer_engine.pytorch`` layer, recorded by forward pre-hooks and summed up as JSON data.

The source is TE's own ``FP8GlobalStateManager`` (``is_fp8_enabled()``, ``get_fp8_recipe()``), which the real TE and
the suite's stand-in both keep: it is what the layers read, however the forward came to be wrapped (accelerate's
``apply_fp8_autowrap``, an implementation's own ``fp8_autocast``, nested blocks). The recipe is judged by its fields,
never by the handler object that produced it.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from torch import nn

#: The recipe of C7, as the fields of TE's ``DelayedScaling``.
C7_RECIPE = {"fp8_format": "HYBRID", "amax_history_len": 16, "amax_compute_algo": "max"}
#: The TE modules whose forward pre-hooks record the recipe (the real TE's names and the stand-in's).
TE_LAYER_CLASSES = ("Linear", "LayerNormLinear", "LayerNormMLP")


def _state_manager() -> Any:
    for name in ("transformer_engine.pytorch.fp8", "transformer_engine.pytorch.quantization"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        manager = getattr(module, "FP8GlobalStateManager", None)
        if manager is not None:
            return manager
    raise ImportError("transformer_engine has no FP8GlobalStateManager (transformer_engine.pytorch.fp8)")


def recipe_fields(recipe: Any) -> dict[str, Any]:
    """The fields of a TE recipe that C7 names, and its class (``fp8_format`` by its enum name)."""
    fmt = getattr(recipe, "fp8_format", None)
    return {
        "class": type(recipe).__name__,
        "fp8_format": getattr(fmt, "name", None if fmt is None else str(fmt)),
        "amax_history_len": getattr(recipe, "amax_history_len", None),
        "amax_compute_algo": getattr(recipe, "amax_compute_algo", None),
    }


def is_te_layer(module: nn.Module) -> bool:
    cls = type(module)
    return cls.__module__.startswith("transformer_engine.") and cls.__name__ in TE_LAYER_CLASSES


class RecipeRecorder:
    """Forward pre-hooks on every TE layer of a model: at each forward, whether FP8 autocast is on and with which
    recipe. :meth:`summary` gives ``[{"enabled", "recipe", "forwards"}]``, one entry per distinct state."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.layers = 0
        self._manager: Any = None

    def attach(self, model: nn.Module) -> None:
        """Hook every TE layer of ``model`` (none: nothing to record, and TE need not be importable)."""
        layers = [module for module in model.modules() if is_te_layer(module)]
        if layers:
            self._manager = _state_manager()
        for module in layers:
            module.register_forward_pre_hook(self._hook)
        self.layers += len(layers)

    def _hook(self, module: nn.Module, args: Any) -> None:
        enabled = bool(self._manager.is_fp8_enabled())
        recipe = recipe_fields(self._manager.get_fp8_recipe()) if enabled else None
        self.counts[json.dumps({"enabled": enabled, "recipe": recipe}, sort_keys=True)] += 1

    def summary(self) -> list[dict[str, Any]]:
        return [{**json.loads(key), "forwards": count} for key, count in sorted(self.counts.items())]


def recipe_problems(summary: list[dict[str, Any]], expected: dict[str, Any] = C7_RECIPE) -> Iterator[str]:
    """What is wrong with the recorded TE forwards: none at all, some outside FP8 autocast, some under a recipe
    whose fields differ from ``expected``."""
    if not summary:
        yield "no Transformer Engine layer ran a forward"
    for entry in summary:
        if not entry["enabled"]:
            yield f"{entry['forwards']} TE layer forwards ran outside FP8 autocast"
            continue
        recipe = entry["recipe"]
        wrong = {name: recipe.get(name) for name, value in expected.items() if recipe.get(name) != value}
        if wrong:
            yield (
                f"{entry['forwards']} TE layer forwards ran with the recipe {recipe} (expected {expected}; "
                f"differs in {wrong})"
            )
