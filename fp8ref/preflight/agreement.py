"""Preflight's prediction and a real run's outcome in the same terms, so that they can be compared: FP8 on or off,
the backend, the recipe in effect, the set of converted layer names, compiled or eager.

:func:`predicted` reads a :class:`~fp8ref.preflight.report.PreflightReport`; :func:`observed` reads the accelerator
of a run after ``train()`` (its prepared models), as :mod:`fp8ref.verify` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fp8ref.config import Backend
from fp8ref.preflight.report import PreflightReport
from fp8ref.verify import compiled as compiled_checks
from fp8ref.verify import layers
from fp8ref.verify.recipe import backend_name, recipe_in_forward, recipe_of

FIELDS = ("fp8_on", "backend", "recipe", "converted", "execution")


@dataclass(frozen=True)
class Outcome:
    fp8_on: bool
    backend: str | None
    #: The torchao recipe the handler holds, or the recipe the Transformer Engine forward runs with.
    recipe: str | None
    converted: frozenset[str]
    execution: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "fp8_on": self.fp8_on,
            "backend": self.backend,
            "recipe": self.recipe,
            "converted": sorted(self.converted),
            "execution": self.execution,
        }

    def differences(self, other: Outcome) -> list[str]:
        """The fields in which ``other`` differs, each as ``field: mine != other's``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{name}: {mine[name]!r} != {theirs[name]!r}" for name in FIELDS if mine[name] != theirs[name]]


def predicted(report: PreflightReport) -> Outcome:
    d = report.decisions
    if d is None or not report.fp8_on:
        return Outcome(False, None, None, frozenset(), report.execution)
    recipe = d.te_recipe.describe() if d.backend == "TE" and d.te_recipe is not None else d.recipe
    return Outcome(True, d.backend, recipe, frozenset(d.converted), report.execution)


def observed(accelerator: Any) -> Outcome:
    """What the accelerator of a run did, read after ``train()``."""
    models = layers.prepared_models(accelerator)
    raw = [m for m in getattr(accelerator, "_models", None) or [] if hasattr(m, "named_modules")]
    fp8_classes = layers.fp8_layer_classes()
    converted = frozenset(fqn for fqn, module in layers.walk(models) if layers.is_fp8_layer(module, fp8_classes))
    compiled = compiled_checks.compiled_by_accelerator(accelerator, raw) or any(
        compiled_checks.is_compiled_module(model) or compiled_checks.modules_run_compiled(model) for model in models
    )
    execution = "compiled" if compiled else "eager"
    fp8_on = bool(getattr(accelerator, "fp8_enabled", False)) and bool(converted)
    if not fp8_on:
        return Outcome(False, None, None, frozenset(), execution)
    backend = backend_name(accelerator)
    if backend == "TE":
        forward = recipe_in_forward(raw)
        recipe = forward.describe() if forward is not None else None
    else:
        recipe = recipe_of(accelerator, Backend.from_accelerate_name(backend))
    return Outcome(True, backend, recipe, converted, execution)
