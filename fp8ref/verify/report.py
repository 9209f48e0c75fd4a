"""The :class:`FP8Report` that verify returns, and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATE_NOT_REQUESTED = "not requested"
STATE_PENDING = "configured, layers not yet prepared"
STATE_IN_EFFECT = "in effect"
STATE_NOT_IN_EFFECT = "not in effect"


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

    @property
    def state(self) -> str:
        """``not requested``, ``configured, layers not yet prepared``, ``in effect`` or ``not in effect``."""
        if not self.requested:
            return STATE_NOT_REQUESTED
        if self.pending:
            return STATE_PENDING
        return STATE_IN_EFFECT if self.in_effect else STATE_NOT_IN_EFFECT

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "state": self.state,
            "in_effect": self.in_effect,
            "accelerator_fp8_enabled": self.accelerator_fp8_enabled,
            "backend": self.backend,
            "recipe": self.recipe,
            "converted": list(self.converted),
            "skipped": [{"fqn": fqn, "reason": reason} for fqn, reason in self.skipped],
            "lora_adapters": list(self.lora_adapters),
            "problems": list(self.problems),
            "emulated": list(self.emulated),
        }

    def summary(self) -> str:
        """A few human-readable lines: state, backend, recipe, counts, and each skip with its reason."""
        if not self.requested:
            return "FP8: not requested"
        head = f"FP8: {self.state.upper()} (backend {self.backend or '?'}, recipe {self.recipe or '?'})"
        if self.pending:
            return head + "\n  the layers are checked after the accelerator's next prepare() of a model"
        lines = [head, f"  converted layers: {len(self.converted)}"]
        if self.emulated:
            lines.append(f"  of which emulate float8 (no float8 matmul): {len(self.emulated)}")
        lines.append(f"  skipped linear layers: {len(self.skipped)}")
        lines += [f"    - {fqn or '<root>'}: {reason}" for fqn, reason in self.skipped]
        if self.lora_adapters:
            lines.append(f"  LoRA adapter layers kept in high precision: {len(self.lora_adapters)}")
            lines += [f"    - {fqn}" for fqn in self.lora_adapters]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)
