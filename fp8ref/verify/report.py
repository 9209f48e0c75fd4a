"""The :class:`FP8Report` that verify returns, and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fp8ref.verify.recipe import TERecipe

STATE_NOT_REQUESTED = "not requested"
STATE_PENDING = "configured, layers not yet prepared"
STATE_IN_EFFECT = "in effect"
STATE_NOT_IN_EFFECT = "not in effect"

EXECUTION_COMPILED = "compiled"
EXECUTION_EAGER = "eager"
EXECUTION_PARTLY = "partly"


@dataclass(frozen=True)
class FP8Report:
    """What :func:`~fp8ref.verify.verify_fp8_status` found."""

    requested: bool
    in_effect: bool
    accelerator_fp8_enabled: bool | None = None
    backend: str | None = None
    recipe: str | None = None
    converted: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = field(default=())
    #: FP8 layers whose config emulates float8 (high-precision matmuls): they are not FP8 in effect.
    emulated: tuple[str, ...] = ()
    #: FP8 is enabled on the accelerator but no model is prepared yet: the layers are checked after the
    #: accelerator's next ``prepare`` of a model.
    pending: bool = False
    #: LoRA adapter layers (``...lora_A.default``), kept in high precision on purpose: not in ``skipped``.
    lora_adapters: tuple[str, ...] = ()
    #: FP8 layers that run inside a compiled module (``torch.compile``, ``Module.compile()``); the others in
    #: ``converted`` run eagerly.
    compiled_layers: tuple[str, ...] = ()
    #: Whether the accelerator's dynamo plugin compiles each model at ``prepare`` (None: not an accelerate
    #: Accelerator).
    compile_at_prepare: bool | None = None
    #: Transformer Engine: the recipe the TE forward runs with, where that was found, and the recipe the
    #: accelerator's handler asks for.
    te_recipe: TERecipe | None = None
    te_recipe_source: str | None = None
    te_recipe_asked: TERecipe | None = None
    #: Why ``accelerator.fp8_enabled`` is false (see :mod:`fp8ref.verify.reasons`), None when it is true.
    off_reason: str | None = None
    #: Warnings that do not make FP8 "not in effect": FP8 runs but may not pay, or not as configured.
    notices: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        """``not requested``, ``configured, layers not yet prepared``, ``in effect`` or ``not in effect``."""
        if not self.requested:
            return STATE_NOT_REQUESTED
        if self.pending:
            return STATE_PENDING
        return STATE_IN_EFFECT if self.in_effect else STATE_NOT_IN_EFFECT

    @property
    def eager_layers(self) -> tuple[str, ...]:
        """FP8 layers that run eagerly (outside every compiled module)."""
        compiled = set(self.compiled_layers)
        return tuple(fqn for fqn in self.converted if fqn not in compiled)

    @property
    def execution(self) -> str | None:
        """``compiled`` (every FP8 layer runs compiled), ``eager`` (none), ``partly``; None without FP8 layers."""
        if not self.converted:
            return None
        if not self.compiled_layers:
            return EXECUTION_EAGER
        return EXECUTION_COMPILED if len(self.compiled_layers) == len(self.converted) else EXECUTION_PARTLY

    def to_dict(self) -> dict[str, Any]:
        plain = ("requested", "state", "in_effect", "accelerator_fp8_enabled", "backend", "recipe")
        return {
            **{name: getattr(self, name) for name in plain},
            "converted": list(self.converted),
            "skipped": [{"fqn": fqn, "reason": reason} for fqn, reason in self.skipped],
            "lora_adapters": list(self.lora_adapters),
            "problems": list(self.problems),
            "emulated": list(self.emulated),
            "execution": {
                "mode": self.execution,
                "compiled": len(self.compiled_layers),
                "eager": len(self.eager_layers),
            },
            "compile_at_prepare": self.compile_at_prepare,
            "te_recipe": None
            if self.te_recipe is None and self.te_recipe_asked is None
            else {
                "in_effect": None if self.te_recipe is None else self.te_recipe.to_dict(),
                "source": self.te_recipe_source,
                "asked": None if self.te_recipe_asked is None else self.te_recipe_asked.to_dict(),
            },
            "off_reason": self.off_reason,
            "notices": list(self.notices),
        }

    def summary(self, *, notices: bool = True) -> str:
        """A few human-readable lines: state, backend, recipe, counts, each skip with its reason, and (unless
        ``notices`` is false, where they are said apart) each notice."""
        if not self.requested:
            return "FP8: not requested"
        head = f"FP8: {self.state.upper()} (backend {self.backend or '?'}, recipe {self.recipe or '?'})"
        if self.pending:
            lines = [head, "  the layers are checked after the accelerator's next prepare() of a model"]
            if self.compile_at_prepare is not None:
                compiles = "yes (its dynamo plugin)" if self.compile_at_prepare else "no"
                lines.append(f"  the accelerator compiles the model at prepare(): {compiles}")
            if self.te_recipe is not None:
                lines.append(f"  TE forward recipe expected: {self.te_recipe.describe()} ({self.te_recipe_source})")
            lines += [f"  notice: {notice}" for notice in self.notices if notices]
            return "\n".join(lines)
        lines = [head]
        if self.off_reason:
            lines.append(f"  why FP8 is off: {self.off_reason}")
        lines.append(f"  converted layers: {len(self.converted)}")
        if self.emulated:
            lines.append(f"  of which emulate float8 (no float8 matmul): {len(self.emulated)}")
        if self.converted:
            lines.append(
                f"  FP8 layers running compiled: {len(self.compiled_layers)}, eager: {len(self.eager_layers)} "
                f"({self.execution})"
            )
        if self.te_recipe is not None:
            lines.append(f"  TE forward recipe: {self.te_recipe.describe()} ({self.te_recipe_source})")
        lines.append(f"  skipped linear layers: {len(self.skipped)}")
        lines += [f"    - {fqn or '<root>'}: {reason}" for fqn, reason in self.skipped]
        if self.lora_adapters:
            lines.append(f"  LoRA adapter layers kept in high precision: {len(self.lora_adapters)}")
            lines += [f"    - {fqn}" for fqn in self.lora_adapters]
        lines += [f"  problem: {problem}" for problem in self.problems]
        lines += [f"  notice: {notice}" for notice in self.notices if notices]
        return "\n".join(lines)
