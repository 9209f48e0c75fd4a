"""Check that FP8 is really in effect, and say what was converted.

``verify_fp8_status`` may be called after ``accelerator.prepare`` or before it (trainers call it at the end of
``Trainer.__init__``; the model is prepared later, in ``train()``). Before ``prepare`` with FP8 enabled on the
accelerator it stays quiet and checks the layers after the accelerator's next ``prepare`` of a model.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from fp8ref.config import FP8Settings
from fp8ref.errors import FP8NotActiveError
from fp8ref.module_filter import SizeThreshold, explain, is_lora_adapter

logger = logging.getLogger(__name__)

TE_RECIPE_FIELDS = ("fp8_format", "amax_history_len", "amax_compute_algo")
# FQN components that wrappers insert inside a model (FSDP1, activation checkpointing, torch.compile).
_WRAPPER_COMPONENTS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})
# Transformer Engine modules that run FP8 GEMMs (te.LayerNorm and te.RMSNorm do not).
_TE_GEMM_MODULES = frozenset({"Linear", "LayerNormLinear", "LayerNormMLP", "GroupedLinear"})
# Instance attribute of an Accelerator whose layers verify checks after its next prepare of a model.
_PENDING_ATTR = "_fp8ref_pending_verify"
_ABSENT = object()

STATE_NOT_REQUESTED = "not requested"
STATE_PENDING = "configured, layers not yet prepared"
STATE_IN_EFFECT = "in effect"
STATE_NOT_IN_EFFECT = "not in effect"


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


def emulates_float8(module: nn.Module) -> bool:
    """Whether an FP8 layer only emulates float8: a torchao ``Float8Linear`` whose config has ``emulate=True``
    casts to float8 and back, then multiplies in high precision. No float8 GEMM runs, so it brings extra casts
    and no speedup: fp8ref never counts it as FP8 in effect."""
    return config_emulates(getattr(module, "config", None))


def config_emulates(config: Any) -> bool:
    """Whether a torchao ``Float8LinearConfig`` (or any object with an ``emulate`` field) emulates float8."""
    return bool(getattr(config, "emulate", False))


def _prepared_models(accelerator: Any) -> list[nn.Module]:
    """The prepared models, without their DDP, DeepSpeed or torch.compile wrappers."""
    models = [m for m in getattr(accelerator, "_models", None) or [] if isinstance(m, nn.Module)]
    unwrap = getattr(accelerator, "unwrap_model", None)
    return [unwrap(m) if callable(unwrap) else m for m in models]


def _stale_optimizer_params(accelerator: Any, models: list[nn.Module]) -> int:
    """How many parameters the prepared optimizers hold that no prepared model holds any more.

    Not asked under DeepSpeed: its ZeRO optimizers hold flat fp32 partitions of their own (built by
    ``deepspeed.initialize``, after accelerate's float8 conversion), never the model's parameters.
    """
    if str(getattr(accelerator, "distributed_type", "")).rsplit(".", 1)[-1] == "DEEPSPEED":
        return 0
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
    if not models and fp8_enabled:
        # Before prepare (a trainer's __init__): FP8 may still come into effect; the layers are checked later.
        return FP8Report(
            requested=True,
            in_effect=False,
            accelerator_fp8_enabled=True,
            backend=backend,
            recipe=_recipe_of(accelerator, backend),
            pending=True,
        )
    if not models:
        problems.append("the accelerator holds no prepared model")
    fp8_classes = _fp8_layer_classes()
    size_threshold = SizeThreshold(settings.effective_recipe) if settings.auto_filter else None
    converted: list[str] = []
    emulated: list[str] = []
    skipped: list[tuple[str, str]] = []
    adapters: list[str] = []
    accepted_but_not_converted: list[str] = []
    for fqn, module in _walk(models):
        if is_fp8_layer(module, fp8_classes):
            converted.append(fqn)
            if emulates_float8(module):
                emulated.append(fqn)
            continue
        if isinstance(module, nn.Linear) and is_lora_adapter(fqn):
            adapters.append(fqn)
        elif isinstance(module, nn.Linear):
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
    if emulated:
        shown = ", ".join(emulated[:5])
        more = len(emulated) - 5
        problems.append(
            f"{len(emulated)} FP8 layer(s) only emulate float8 ({shown}{f', and {more} more' if more > 0 else ''}): "
            "their config has emulate=True, so each matmul runs in high precision after a simulated float8 cast. "
            "No float8 kernel runs: no speedup will come, only the cost of the extra casts. Build the torchao "
            "Float8LinearConfig with emulate=False (fp8ref.create_fp8_kwargs always does)"
        )
    if models and converted and accepted_but_not_converted:
        shown = ", ".join(accepted_but_not_converted[:5])
        more = len(accepted_but_not_converted) - 5
        problems.append(
            f"{len(accepted_but_not_converted)} eligible linear layer(s) were not converted ({shown}"
            f"{f', and {more} more' if more > 0 else ''}): a custom module_filter_func, or a backend that "
            "stopped converting early"
        )
    return FP8Report(
        requested=True,
        in_effect=bool(fp8_enabled) and bool(converted) and not emulated and not stale,
        accelerator_fp8_enabled=None if fp8_enabled is None else bool(fp8_enabled),
        backend=backend,
        recipe=_recipe_of(accelerator, backend),
        converted=tuple(converted),
        skipped=tuple(skipped),
        problems=tuple(problems),
        emulated=tuple(emulated),
        lora_adapters=tuple(adapters),
    )


@dataclass
class _PendingCheck:
    """The layer check that a verify before ``prepare`` left for the accelerator's next ``prepare``."""

    training_args: Any
    strict: bool
    wrapper: Callable[..., Any]
    saved: Any  # the accelerator's own instance attribute ``prepare``, or _ABSENT


def _stop_following(accelerator: Any) -> _PendingCheck | None:
    """Forget the pending check and put back what the wrapper replaced (unless someone wrapped it since)."""
    namespace = getattr(accelerator, "__dict__", None)
    if not isinstance(namespace, dict):
        return None
    pending: _PendingCheck | None = namespace.pop(_PENDING_ATTR, None)
    if pending is not None and namespace.get("prepare") is pending.wrapper:
        if pending.saved is _ABSENT:
            del accelerator.prepare
        else:
            accelerator.prepare = pending.saved
    return pending


def _follow_up_after_prepare(accelerator: Any, training_args: Any, strict: bool) -> None:
    """Check the layers once the accelerator's ``prepare`` has prepared a model.

    Wraps ``prepare`` on this accelerator instance only (the class is left alone), once: a second verify
    before ``prepare`` only updates the arguments. The wrapper runs the original ``prepare`` untouched (with
    DeepSpeed and FSDP too), and after the first call that leaves a prepared model on the accelerator
    (``Trainer.train`` prepares its dataloader first) it puts the original back and runs
    :func:`verify_fp8_status`, which warns, or raises under ``strict``.
    """
    namespace = getattr(accelerator, "__dict__", None)
    if not isinstance(namespace, dict) or not callable(getattr(accelerator, "prepare", None)):
        logger.info("fp8ref: %r has no prepare() to follow: call verify_fp8_status after prepare", accelerator)
        return
    pending: _PendingCheck | None = namespace.get(_PENDING_ATTR)
    if pending is not None:
        pending.training_args, pending.strict = training_args, strict
        return
    original = accelerator.prepare
    saved = namespace.get("prepare", _ABSENT)

    @functools.wraps(original)
    def prepare(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if vars(accelerator).get(_PENDING_ATTR) is not None and _prepared_models(accelerator):
            check = _stop_following(accelerator)
            if check is not None:
                verify_fp8_status(accelerator, check.training_args, strict=check.strict)
        return result

    setattr(accelerator, _PENDING_ATTR, _PendingCheck(training_args, strict, prepare, saved))
    accelerator.prepare = prepare


def verify_fp8_status(accelerator: Any, training_args: Any, *, strict: bool = False) -> FP8Report:
    """Check that FP8 is in effect; return the :class:`FP8Report`.

    When FP8 was requested and is not in effect (``accelerator.fp8_enabled`` false, no FP8 layer in the
    prepared models, FP8 layers that only emulate float8, or an optimizer holding weights the conversion
    replaced, so that FP8 layers would never train), logs a WARNING, or raises :class:`FP8NotActiveError`
    with ``strict=True``. Logs nothing at WARNING when FP8 is off or in effect (smaller doubts go to INFO).

    Called before any model is prepared (where trainers call it, at the end of ``Trainer.__init__``):
    with ``accelerator.fp8_enabled`` false it warns (raises) at once, since FP8 cannot come into effect;
    with it true it logs at INFO only, returns a report in the state "configured, layers not yet prepared",
    and checks the layers after the accelerator's next ``prepare`` of a model, warning (raising) then if
    FP8 is not in effect.
    """
    if not getattr(training_args, "fp8", False):
        return FP8Report(requested=False, in_effect=False)
    report = inspect_fp8_status(accelerator, FP8Settings.from_training_args(training_args))
    if report.pending:
        _follow_up_after_prepare(accelerator, training_args, strict)
        logger.info(report.summary())
        return report
    if accelerator is not None:
        _stop_following(accelerator)  # a check after prepare replaces any pending one
    if not report.in_effect:
        message = "FP8 training was requested but is NOT in effect:\n" + report.summary()
        if strict:
            raise FP8NotActiveError(message)
        logger.warning(message)
    else:
        logger.info(report.summary())
    return report
