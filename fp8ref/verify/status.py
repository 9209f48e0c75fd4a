"""``inspect_fp8_status`` (the report, silently) and ``verify_fp8_status`` (the report, logged or raised)."""

from __future__ import annotations

import logging
from typing import Any

import torch.nn as nn

from fp8ref.config import Backend, FP8Settings
from fp8ref.errors import FP8NotActiveError
from fp8ref.module_filter import SizeThreshold, explain, is_lora_adapter
from fp8ref.verify import compiled, layers
from fp8ref.verify import recipe as recipes
from fp8ref.verify.deferred import follow_up_after_prepare, stop_following
from fp8ref.verify.optimizer import stale_optimizer_params
from fp8ref.verify.reasons import fp8_off_reason
from fp8ref.verify.recipe import backend_name, recipe_of
from fp8ref.verify.report import FP8Report

logger = logging.getLogger("fp8ref.verify")


def _raw_models(accelerator: Any) -> list[Any]:
    """The prepared objects as the accelerator holds them (DDP, DeepSpeed engine, compile wrapper)."""
    return [m for m in getattr(accelerator, "_models", None) or [] if isinstance(m, nn.Module)]


def _te_recipe_report(
    accelerator: Any, raw_models: list[Any]
) -> tuple[recipes.TERecipe | None, str | None, recipes.TERecipe | None, list[str]]:
    """The TE recipe in effect, its source, the recipe asked for, and the notice when they differ."""
    in_effect, source = recipes.te_recipe_in_effect(accelerator, raw_models)
    asked = recipes.te_recipe_asked(accelerator)
    notices = []
    if raw_models and in_effect is not None and asked is not None and in_effect != asked and source is not None:
        notices.append(
            recipes.recipe_mismatch_notice(asked, in_effect, source, recipes.dropped_under_deepspeed(accelerator))
        )
    return in_effect, source, asked, notices


def _pending_te_compile_notice(accelerator: Any, in_effect: recipes.TERecipe | None) -> list[str]:
    """Before prepare: TE + a dynamo plugin that compiles whole models + a DelayedScaling recipe."""
    if in_effect is None or in_effect.kind != "DelayedScaling":
        return []
    if not compiled.compiles_at_prepare(accelerator) or compiled.regional_compilation(accelerator):
        return []
    return [compiled.te_compile_refusal()]


def inspect_fp8_status(accelerator: Any, settings: FP8Settings, training_args: Any = None) -> FP8Report:
    """Build the :class:`FP8Report` without logging or raising. ``training_args`` (optional) tells the HF
    Trainer apart (its arguments have ``torch_compile`` and ``mixed_precision``) for the advice given."""
    if not settings.enabled:
        return FP8Report(requested=False, in_effect=False)
    problems: list[str] = []
    if accelerator is None:
        return FP8Report(requested=True, in_effect=False, problems=("no accelerator was given",))
    fp8_enabled = getattr(accelerator, "fp8_enabled", None)
    backend_named = backend_name(accelerator)  # as accelerate says it, for the report
    backend = None if backend_named is None else Backend.from_accelerate_name(backend_named)
    off_reason = None
    if not fp8_enabled:
        off_reason, explanation = fp8_off_reason(accelerator, training_args)
        problems.append(explanation)
    raw_models = _raw_models(accelerator)
    models = layers.prepared_models(accelerator)
    has_plugin = hasattr(getattr(accelerator, "state", None), "dynamo_plugin")
    compile_at_prepare = compiled.compiles_at_prepare(accelerator) if has_plugin else None
    te_recipe, te_source, te_asked, notices = (
        _te_recipe_report(accelerator, raw_models) if backend is Backend.TE and fp8_enabled else (None, None, None, [])
    )
    if not models and fp8_enabled:
        # Before prepare (a trainer's __init__): FP8 may still come into effect; the layers are checked later.
        return FP8Report(
            requested=True,
            in_effect=False,
            accelerator_fp8_enabled=True,
            backend=backend_named,
            recipe=recipe_of(accelerator, backend),
            pending=True,
            compile_at_prepare=compile_at_prepare,
            te_recipe=te_recipe,
            te_recipe_source=te_source,
            te_recipe_asked=te_asked,
            notices=tuple(_pending_te_compile_notice(accelerator, te_recipe) if backend is Backend.TE else ()),
        )
    if not models:
        problems.append("the accelerator holds no prepared model")
    fp8_classes = layers.fp8_layer_classes()
    size_threshold = SizeThreshold(settings.effective_recipe) if settings.auto_filter else None
    compiled_everything = compiled.compiled_by_accelerator(accelerator, raw_models)
    run_compiled: set[int] = set()
    for model in models:
        run_compiled |= compiled.modules_run_compiled(model)
    converted: list[str] = []
    compiled_layers: list[str] = []
    te_layers: list[str] = []
    emulated: list[str] = []
    skipped: list[tuple[str, str]] = []
    adapters: list[str] = []
    accepted_but_not_converted: list[str] = []
    for fqn, module in layers.walk(models):
        if layers.is_fp8_layer(module, fp8_classes):
            converted.append(fqn)
            if compiled_everything or id(module) in run_compiled:
                compiled_layers.append(fqn)
            if layers.is_te_gemm_module(module):
                te_layers.append(fqn)
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
    in_effect = bool(fp8_enabled) and bool(converted) and not emulated and not stale
    torchao_layers = [fqn for fqn in converted if fqn not in set(te_layers)]
    if in_effect and torchao_layers and not set(torchao_layers) & set(compiled_layers):
        notices.append(compiled.eager_notice(len(torchao_layers), compiled.compile_switch(accelerator, training_args)))
    whole_model_compiled = compiled_everything or any(compiled.is_compiled_module(m) for m in models)
    if te_layers and whole_model_compiled and te_recipe is not None and te_recipe.kind == "DelayedScaling":
        notices.append(compiled.te_compile_refusal())
    return FP8Report(
        requested=True,
        in_effect=in_effect,
        accelerator_fp8_enabled=None if fp8_enabled is None else bool(fp8_enabled),
        backend=backend_named,
        recipe=recipe_of(accelerator, backend),
        converted=tuple(converted),
        skipped=tuple(skipped),
        problems=tuple(problems),
        emulated=tuple(emulated),
        lora_adapters=tuple(adapters),
        compiled_layers=tuple(compiled_layers),
        compile_at_prepare=compile_at_prepare,
        te_recipe=te_recipe,
        te_recipe_source=te_source,
        te_recipe_asked=te_asked,
        off_reason=off_reason,
        notices=tuple(notices),
    )


def _verify_later(accelerator: Any, training_args: Any, strict: bool, given: frozenset[str]) -> object:
    return _verify(accelerator, training_args, strict, given)


def verify_fp8_status(accelerator: Any, training_args: Any, *, strict: bool = False) -> FP8Report:
    """Check that FP8 is in effect; return the :class:`FP8Report`.

    When FP8 was requested and is not in effect (``accelerator.fp8_enabled`` false, no FP8 layer in the
    prepared models, FP8 layers that only emulate float8, or an optimizer holding weights the conversion
    replaced, so that FP8 layers would never train), logs a WARNING, or raises :class:`FP8NotActiveError`
    with ``strict=True``. The report says why ``fp8_enabled`` is false, each reason with its fix.

    When FP8 is in effect but may not pay, or not as configured, it logs each notice at WARNING and never
    raises for it, ``strict`` or not: torchao float8 layers none of which runs under ``torch.compile``
    (contract C12e, with the switch for the user's setup); a Transformer Engine forward whose recipe is not
    the one the accelerator's handler holds; Transformer Engine with ``DelayedScaling`` in a model compiled as
    a whole, which TE refuses at the first step. Otherwise nothing at WARNING (smaller doubts go to INFO).

    Called before any model is prepared (where trainers call it, at the end of ``Trainer.__init__``):
    with ``accelerator.fp8_enabled`` false it warns (raises) at once, since FP8 cannot come into effect;
    with it true it logs at INFO only, returns a report in the state "configured, layers not yet prepared",
    and checks the layers after the accelerator's next ``prepare`` of a model, warning (raising) then if
    FP8 is not in effect, and giving the notices then. Only the refusal of Transformer Engine under
    ``torch.compile``, which the accelerator's dynamo plugin shows before ``prepare``, is said at once.
    """
    return _verify(accelerator, training_args, strict, frozenset())


def _verify(accelerator: Any, training_args: Any, strict: bool, given: frozenset[str]) -> FP8Report:
    """verify_fp8_status; ``given`` are the notices a verify before prepare already logged."""
    if not getattr(training_args, "fp8", False):
        return FP8Report(requested=False, in_effect=False)
    report = inspect_fp8_status(accelerator, FP8Settings.from_training_args(training_args), training_args)
    if report.pending:
        follow_up_after_prepare(accelerator, training_args, strict, _verify_later, given | set(report.notices))
        logger.info(report.summary(notices=False))  # each notice is a WARNING of its own, once
        for notice in report.notices:
            if notice not in given:
                logger.warning("fp8ref: %s", notice)
        return report
    if accelerator is not None:
        stop_following(accelerator)  # a check after prepare replaces any pending one
    if not report.in_effect:
        message = "FP8 training was requested but is NOT in effect:\n" + report.summary()
        if strict:
            raise FP8NotActiveError(message)
        logger.warning(message)
        return report
    logger.info(report.summary(notices=False))
    for notice in report.notices:
        if notice not in given:
            logger.warning("fp8ref: %s", notice)
    return report
