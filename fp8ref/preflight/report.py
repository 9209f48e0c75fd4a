"""The preflight report: what the run will do, each problem with its fix, the known upstream defects that apply, and
one verdict line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fp8ref.preflight.decisions import Decisions
from fp8ref.preflight.payoff import Payoff
from fp8ref.upstream_defects import UpstreamDefect

BACKEND_TEXT = {"AO": "torchao", "TE": "Transformer Engine", "MSAMP": "MS-AMP"}


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str


@dataclass(frozen=True)
class PreflightReport:
    config: str
    client: str
    parser: str
    helpers: str
    call_order: str
    calls: tuple[str, ...]
    model: str
    versions: dict[str, str | None]
    decisions: Decisions | None
    payoff: Payoff
    tokens_per_step: int
    seq_len: str
    #: The first client call that raised, ``(call, error)``: the run stops there.
    stops_at: tuple[str, str] | None = None
    lora: str | None = None
    problems: tuple[Problem, ...] = ()
    defects: tuple[UpstreamDefect, ...] = field(default=())

    @property
    def fp8_on(self) -> bool:
        return bool(self.decisions and self.decisions.will_convert and self.stops_at is None)

    @property
    def execution(self) -> str:
        return "compiled" if self.decisions is not None and self.decisions.compiled else "eager"

    @property
    def pays(self) -> bool:
        return self.fp8_on and self.payoff.configured > 1.0

    @property
    def exit_status(self) -> int:
        return 0 if self.pays else 1

    def _recipe_text(self) -> str:
        d = self.decisions
        if d is None:
            return "?"
        if d.backend == "TE" and d.te_recipe is not None:
            return f"{d.te_recipe.describe()} in the forward"
        return d.recipe or "?"

    def verdict(self) -> str:
        d = self.decisions
        if self.fp8_on and d is not None:
            layers = len([layer for layer in d.layers if not layer.lora_adapter])
            bound = self.payoff
            return (
                f"FP8 WILL BE ON: {BACKEND_TEXT.get(d.backend or '', d.backend)}, {self._recipe_text()}, "
                f"{len(d.converted)} of {layers} linear layers, {self.execution}; bound {bound.configured:.2f}x "
                f"{bound.configured_mode} ({bound.bounds[bound.other_mode]:.2f}x {bound.other_mode})"
            )
        first = self.problems[0] if self.problems else Problem("FP8 converts nothing", "see the report above")
        return f"FP8 WILL BE OFF: {first.what}; fix: {first.fix}"

    def to_dict(self) -> dict[str, Any]:
        d = self.decisions
        return {
            "config": self.config,
            "client": self.client,
            "parser": self.parser,
            "helpers": self.helpers,
            "call_order": self.call_order,
            "calls": list(self.calls),
            "stops_at": None if self.stops_at is None else {"call": self.stops_at[0], "error": self.stops_at[1]},
            "model": self.model,
            "lora": self.lora,
            "versions": self.versions,
            "fp8_on": self.fp8_on,
            "accelerator_fp8_enabled": None if d is None else d.fp8_enabled,
            "off_reason": None if d is None else d.off_reason,
            "backend": None if d is None else d.backend,
            "recipe": None if d is None else d.recipe,
            "te_forward_recipe": None if d is None or d.te_recipe is None else d.te_recipe.to_dict(),
            "te_recipe_handler_passed": None if d is None else d.te_recipe_handler_passed,
            "te_recipe_dropped": None if d is None else d.te_recipe_dropped,
            "distributed_type": None if d is None else d.distributed_type,
            "execution": self.execution,
            "prepare_failure": None if d is None else d.prepare_failure,
            "converted": [] if d is None else d.converted,
            "skipped": []
            if d is None
            else [{"fqn": x.fqn, "reason": x.reason} for x in d.layers if not x.converted and not x.lora_adapter],
            "lora_adapters": [] if d is None else [x.fqn for x in d.layers if x.lora_adapter and not x.converted],
            "lora_adapters_converted": [] if d is None else [x.fqn for x in d.layers if x.lora_adapter and x.converted],
            "tokens_per_step": self.tokens_per_step,
            "payoff": self.payoff.to_dict(),
            "problems": [{"problem": p.what, "fix": p.fix} for p in self.problems],
            "upstream_defects": [defect.to_dict() for defect in self.defects],
            "verdict": self.verdict(),
            "exit_status": self.exit_status,
        }

    def _layer_lines(self, d: Decisions) -> list[str]:
        skipped = [x for x in d.layers if not x.converted and not x.lora_adapter]
        adapters = [x for x in d.layers if x.lora_adapter]
        lines = [f"linear layers converted: {len(d.converted)}, kept: {len(skipped)}"]
        reasons: dict[str, list[str]] = {}
        for layer in skipped:
            reasons.setdefault(layer.reason, []).append(layer.fqn)
        for reason, names in reasons.items():
            shown = ", ".join(names[:3]) + (f", and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(f"  kept ({reason}): {shown}")
        if adapters:
            kept = sum(not x.converted for x in adapters)
            lines.append(f"LoRA adapters: {len(adapters)}, kept in high precision: {kept}")
        return lines

    def render(self) -> str:
        d = self.decisions
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items() if version)
        lines = [
            f"fp8ref preflight: {self.config}",
            f"  parsed by: {self.parser}",
            f"  helpers: {self.helpers}; call order: {self.call_order}",
            f"  model: {self.model}{f', {self.lora}' if self.lora else ''}",
            f"  installed: {versions}",
        ]
        if self.stops_at is not None:
            lines.append(f"the run stops at {self.stops_at[0]}: {self.stops_at[1]}")
        if d is not None:
            state = "on" if d.fp8_enabled else f"off ({d.off_reason})"
            lines.append(
                f"accelerator: FP8 {state}, backend {d.backend or 'none'}, recipe {d.recipe or 'none'}, "
                f"distributed {d.distributed_type}, {self.execution}"
            )
            if d.te_recipe is not None or d.te_recipe_handler_passed:
                lines.append(
                    f"TE forward recipe: {d.te_recipe.describe() if d.te_recipe else '?'} "
                    f"({d.te_recipe_handler_passed})"
                )
            if d.prepare_failure:
                lines.append(f"prepare() raises: {d.prepare_failure}")
            lines += self._layer_lines(d)
        p = self.payoff
        lines.append(
            f"roofline bound of the linear layers on {p.gpu} at {p.tokens} tokens per GEMM ({self.seq_len}; "
            f"{self.tokens_per_step} tokens per optimizer step): {p.configured:.2f}x {p.configured_mode} (the "
            f"configured mode), {p.bounds[p.other_mode]:.2f}x {p.other_mode}"
        )
        if p.bounds_if_on is not None:
            lines.append(
                f"  had FP8 been on with fp8ref's filter: {p.bounds_if_on['compiled']:.2f}x compiled, "
                f"{p.bounds_if_on['eager']:.2f}x eager"
            )
        for problem in self.problems:
            lines += [f"problem: {problem.what}", f"  fix: {problem.fix}"]
        if self.defects:
            lines.append("known upstream FP8 defects in the installed versions:")
            for defect in self.defects:
                handled = "fp8ref works around it" if defect.fp8ref_works_around else "fp8ref does not work around it"
                lines.append(f"  - {defect.id} ({defect.ranges()}; {handled}): fix: {defect.fix}")
        lines.append(self.verdict())
        return "\n".join(lines)
