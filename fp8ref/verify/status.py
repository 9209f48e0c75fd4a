"""``inspect_fp8_status`` (the report, silently) and ``verify_fp8_status`` (the report, logged or raised)."""

from __future__ import annotations

import logging
from typing import Any

import torch.nn as nn

from fp8ref.config import FP8Settings
from fp8ref.errors import FP8NotActiveError
from fp8ref.module_filter import SizeThreshold, explain, is_lora_adapter
from fp8ref.verify import layers
from fp8ref.verify.deferred import follow_up_after_prepare, stop_following
from fp8ref.verify.optimizer import stale_optimizer_params
from fp8ref.verify.recipe import backend_name, recipe_of
from fp8ref.verify.report import FP8Report

logger = logging.getLogger("fp8ref.verify")


def inspect_fp8_status(accelerator: Any, settings: FP8Settings) -> FP8Report:
    """Build the :class:`FP8Report` without logging or raising."""
    if not settings.enabled:
        return FP8Report(requested=False, in_effect=False)
    problems: list[str] = []
    if accelerator is None:
        return FP8Report(requested=True, in_effect=False, problems=("no accelerator was given",))
    fp8_enabled = getattr(accelerator, "fp8_enabled", None)
    backend = backend_name(accelerator)
    if not fp8_enabled:
        problems.append(
            f"accelerator.fp8_enabled is {fp8_enabled!r}: the Accelerator was not built with "
            "mixed_precision='fp8' (call configure_fp8_environment and patch_accelerator_for_fp8 before it is "
            "created, or pass mixed_precision=get_fp8_mixed_precision(args))"
        )
    models = layers.prepared_models(accelerator)
    if not models and fp8_enabled:
        # Before prepare (a trainer's __init__): FP8 may still come into effect; the layers are checked later.
        return FP8Report(
            requested=True,
            in_effect=False,
            accelerator_fp8_enabled=True,
            backend=backend,
            recipe=recipe_of(accelerator, backend),
            pending=True,
        )
    if not models:
        problems.append("the accelerator holds no prepared model")
    fp8_classes = layers.fp8_layer_classes()
    size_threshold = SizeThreshold(settings.effective_recipe) if settings.auto_filter else None
    converted: list[str] = []
    emulated: list[str] = []
    skipped: list[tuple[str, str]] = []
    adapters: list[str] = []
    accepted_but_not_converted: list[str] = []
    for fqn, module in layers.walk(models):
        if layers.is_fp8_layer(module, fp8_classes):
            converted.append(fqn)
            if layers.emulates_float8(module):
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
    stale = stale_optimizer_params(accelerator, models) if models else 0
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
        recipe=recipe_of(accelerator, backend),
        converted=tuple(converted),
        skipped=tuple(skipped),
        problems=tuple(problems),
        emulated=tuple(emulated),
        lora_adapters=tuple(adapters),
    )


def _verify_later(accelerator: Any, training_args: Any, strict: bool) -> object:
    return verify_fp8_status(accelerator, training_args, strict=strict)


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
        follow_up_after_prepare(accelerator, training_args, strict, _verify_later)
        logger.info(report.summary())
        return report
    if accelerator is not None:
        stop_following(accelerator)  # a check after prepare replaces any pending one
    if not report.in_effect:
        message = "FP8 training was requested but is NOT in effect:\n" + report.summary()
        if strict:
            raise FP8NotActiveError(message)
        logger.warning(message)
    else:
        logger.info(report.summary())
    return report
