"""Check, after ``accelerator.prepare``, that FP8 is really in effect, and say what was converted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from fp8ref.config import FP8Settings
from fp8ref.errors import FP8NotActiveError
from fp8ref.module_filter import SizeThreshold, explain

logger = logging.getLogger(__name__)

TE_RECIPE_FIELDS = ("fp8_format", "amax_history_len", "amax_compute_algo")
# FQN components that wrappers insert inside a model (FSDP1, activation checkpointing, torch.compile).
_WRAPPER_COMPONENTS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})
# Transformer Engine modules that run FP8 GEMMs (te.LayerNorm and te.RMSNorm do not).
_TE_GEMM_MODULES = frozenset({"Linear", "LayerNormLinear", "LayerNormMLP", "GroupedLinear"})


@dataclass(frozen=True)
class FP8Report:
    """What :func:`verify_fp8_status` found."""

    requested: bool
    in_effect: bool
    accelerator_fp8_enabled: bool | None = None
    backend: str | None = None
    recipe: str | None = None
    converted: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "in_effect": self.in_effect,
            "accelerator_fp8_enabled": self.accelerator_fp8_enabled,
            "backend": self.backend,
            "recipe": self.recipe,
            "converted": list(self.converted),
            "skipped": [{"fqn": fqn, "reason": reason} for fqn, reason in self.skipped],
            "problems": list(self.problems),
        }

    def summary(self) -> str:
        """A few human-readable lines: state, backend, recipe, counts, and each skip with its reason."""
        if not self.requested:
            return "FP8: not requested"
        state = "IN EFFECT" if self.in_effect else "NOT IN EFFECT"
        lines = [
            f"FP8: {state} (backend {self.backend or '?'}, recipe {self.recipe or '?'})",
            f"  converted layers: {len(self.converted)}",
            f"  skipped linear layers: {len(self.skipped)}",
        ]
        lines += [f"    - {fqn or '<root>'}: {reason}" for fqn, reason in self.skipped]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


def _clean_fqn(fqn: str) -> str:
    return ".".join(part for part in fqn.split(".") if part not in _WRAPPER_COMPONENTS)


def _fp8_layer_classes() -> tuple[type, ...]:
    """torchao's FP8 layer class, if torchao was imported (nothing is imported here: a backend that was
    never imported cannot have built a layer). Transformer Engine layers are recognised by name."""
    classes: list[type] = []
    torchao_linear = sys.modules.get("torchao.float8.float8_linear")
    if torchao_linear is not None and hasattr(torchao_linear, "Float8Linear"):
        classes.append(torchao_linear.Float8Linear)
    return tuple(classes)


def _is_te_gemm_module(module: nn.Module) -> bool:
    cls = type(module)
    return cls.__module__.startswith("transformer_engine.") and cls.__name__ in _TE_GEMM_MODULES


def is_fp8_layer(module: nn.Module, fp8_classes: tuple[type, ...] | None = None) -> bool:
    """Whether ``module`` runs its GEMMs in FP8: a torchao ``Float8Linear`` or a Transformer Engine GEMM
    module (``te.LayerNorm`` and ``te.RMSNorm`` are not). ``fp8_classes`` caches the class lookup."""
    classes = _fp8_layer_classes() if fp8_classes is None else fp8_classes
    return (bool(classes) and isinstance(module, classes)) or _is_te_gemm_module(module)


def _prepared_models(accelerator: Any) -> list[nn.Module]:
    """The prepared models, without their DDP, DeepSpeed or torch.compile wrappers."""
    models = [m for m in getattr(accelerator, "_models", None) or [] if isinstance(m, nn.Module)]
    unwrap = getattr(accelerator, "unwrap_model", None)
    return [unwrap(m) if callable(unwrap) else m for m in models]


def _stale_optimizer_params(accelerator: Any, models: list[nn.Module]) -> int:
    """How many parameters the prepared optimizers hold that no prepared model holds any more."""
    in_models = {id(param) for model in models for param in model.parameters()}
    stale = 0
    for optimizer in getattr(accelerator, "_optimizers", None) or []:
        inner = getattr(optimizer, "optimizer", optimizer)
        for group in getattr(inner, "param_groups", []):
            stale += sum(id(param) not in in_models for param in group["params"])
    return stale


def _walk(models: Iterable[nn.Module]) -> Iterator[tuple[str, nn.Module]]:
    for index, model in enumerate(models):
        for fqn, module in model.named_modules():
            name = _clean_fqn(fqn)
            yield (f"model{index}:{name}" if index else name), module


def _backend_name(accelerator: Any) -> str | None:
    backend = getattr(accelerator, "fp8_backend", None)
    if backend is None:
        return None
    return str(getattr(backend, "value", backend))


def _recipe_of(accelerator: Any, backend: str | None) -> str | None:
    if backend == "AO":
        handler = getattr(accelerator, "ao_recipe_handler", None)
        config = getattr(handler, "config", None)
        if config is None:
            return None
        from fp8ref.recipes import recipe_name_of

        name = recipe_name_of(config)
        if getattr(config, "enable_fsdp_float8_all_gather", False):
            name += " + fsdp float8 all-gather"
        return name
    if backend == "TE":
        handler = getattr(accelerator, "te_recipe_handler", None) or getattr(accelerator, "fp8_recipe_handler", None)
        if handler is None:
            return None
        fmt, history, algo = (getattr(handler, name, "?") for name in TE_RECIPE_FIELDS)
        return f"DelayedScaling {fmt}, amax_history_len={history}, amax_compute_algo={algo}"
    return None


def inspect_fp8_status(accelerator: Any, settings: FP8Settings) -> FP8Report:
    """Build the :class:`FP8Report` without logging or raising."""
    if not settings.enabled:
        return FP8Report(requested=False, in_effect=False)
    problems: list[str] = []
    if accelerator is None:
        return FP8Report(requested=True, in_effect=False, problems=("no accelerator was given",))
    fp8_enabled = getattr(accelerator, "fp8_enabled", None)
    backend = _backend_name(accelerator)
    if not fp8_enabled:
        problems.append(
            f"accelerator.fp8_enabled is {fp8_enabled!r}: the Accelerator was not built with "
            "mixed_precision='fp8' (call configure_fp8_environment and patch_accelerator_for_fp8 before it is "
            "created, or pass mixed_precision=get_fp8_mixed_precision(args))"
        )
    models = _prepared_models(accelerator)
    if not models:
        problems.append("the accelerator holds no prepared model: call accelerator.prepare(model) first")
    fp8_classes = _fp8_layer_classes()
    size_threshold = SizeThreshold(settings.effective_recipe) if settings.auto_filter else None
    converted: list[str] = []
    skipped: list[tuple[str, str]] = []
    accepted_but_not_converted: list[str] = []
    for fqn, module in _walk(models):
        if is_fp8_layer(module, fp8_classes):
            converted.append(fqn)
            continue
        if isinstance(module, nn.Linear):
            decision = explain(module, fqn, size_threshold=size_threshold)
            if decision.convert:
                accepted_but_not_converted.append(fqn)
                skipped.append((fqn, "accepted by the filter but not converted"))
            else:
                skipped.append((fqn, f"{decision.reason.value if decision.reason else ''}: {decision.detail}"))
    stale = _stale_optimizer_params(accelerator, models) if models else 0
    if stale:
        problems.append(
            f"the optimizer holds {stale} parameter(s) that are no longer in the prepared model (torchao replaces "
            "the weights when fsdp float8 all-gather is on): they will never be updated. Build the optimizer "
            "after accelerator.prepare(model), or call patch_accelerator_for_fp8(), which remaps it"
        )
    if models and not converted:
        problems.append(
            "the prepared models hold no FP8 layer (torchao Float8Linear or Transformer Engine module): "
            "every linear layer runs in high precision"
        )
    elif accepted_but_not_converted:
        shown = ", ".join(accepted_but_not_converted[:5])
        more = len(accepted_but_not_converted) - 5
        problems.append(
            f"{len(accepted_but_not_converted)} eligible linear layer(s) were not converted ({shown}"
            f"{f', and {more} more' if more > 0 else ''}): a custom module_filter_func, or a backend that "
            "stopped converting early"
        )
    return FP8Report(
        requested=True,
        in_effect=bool(fp8_enabled) and bool(converted) and not stale,
        accelerator_fp8_enabled=None if fp8_enabled is None else bool(fp8_enabled),
        backend=backend,
        recipe=_recipe_of(accelerator, backend),
        converted=tuple(converted),
        skipped=tuple(skipped),
        problems=tuple(problems),
    )


def verify_fp8_status(accelerator: Any, training_args: Any, *, strict: bool = False) -> FP8Report:
    """Check after ``accelerator.prepare`` that FP8 is in effect; return the :class:`FP8Report`.

    When FP8 was requested and is not in effect (``accelerator.fp8_enabled`` false, no FP8 layer in the
    prepared models, or an optimizer holding weights the conversion replaced, so that FP8 layers would
    never train), logs a WARNING, or raises :class:`FP8NotActiveError` with ``strict=True``.
    Logs nothing at WARNING when FP8 is off or in effect (smaller doubts go to INFO).
    """
    if not getattr(training_args, "fp8", False):
        return FP8Report(requested=False, in_effect=False)
    report = inspect_fp8_status(accelerator, FP8Settings.from_training_args(training_args))
    if not report.in_effect:
        message = "FP8 training was requested but is NOT in effect:\n" + report.summary()
        if strict:
            raise FP8NotActiveError(message)
        logger.warning(message)
    else:
        logger.info(report.summary())
    return report
