"""Build the accelerate kwargs handler that carries the FP8 recipe.

- torchao: ``AORecipeKwargs(config=Float8LinearConfig, module_filter_func=ModuleFilter)``; rowwise by
  default, tensorwise when FSDP float8 all-gather is requested (torchao supports the float8 all-gather
  only with tensorwise weights).
- Transformer Engine: ``TERecipeKwargs(fp8_format="HYBRID", amax_history_len=16, amax_compute_algo="max")``
  (``FP8RecipeKwargs(backend="TE", ...)`` on accelerate releases without ``TERecipeKwargs``), and the same
  recipe as ``FP8RecipeKwargs(backend="TE", ...)`` under DeepSpeed, because accelerate's DeepSpeed path reads
  only that handler (see :func:`te_handler_for_deepspeed`).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import TYPE_CHECKING, Any

from fp8ref.backends import INSTALL_HINT, resolve_settings
from fp8ref.config import Backend, FP8Settings, TorchaoRecipe
from fp8ref.deepspeed_check import deepspeed_requested
from fp8ref.errors import FP8BackendUnavailableError, FP8ConfigError
from fp8ref.module_filter import ModuleFilter, make_module_filter

if TYPE_CHECKING:
    from accelerate.utils import KwargsHandler
    from torchao.float8 import Float8LinearConfig

logger = logging.getLogger(__name__)

TE_FP8_FORMAT = "HYBRID"
TE_AMAX_HISTORY_LEN = 16
TE_AMAX_COMPUTE_ALGO = "max"


def get_fp8_mixed_precision(training_args: Any) -> str | None:
    """``"fp8"`` when FP8 is requested, else ``None`` (the ``mixed_precision`` of ``Accelerator``)."""
    return "fp8" if FP8Settings.from_training_args(training_args).enabled else None


def build_torchao_config(settings: FP8Settings) -> Float8LinearConfig:
    """The torchao ``Float8LinearConfig`` of ``settings`` (its recipe, and the all-gather flag)."""
    from torchao.float8 import Float8LinearConfig

    recipe = settings.effective_recipe
    if settings.enable_fsdp_float8_all_gather and settings.recipe is None:
        logger.info(
            "fp8_enable_fsdp_float8_all_gather=True: using the torchao 'tensorwise' recipe instead of the "
            "default 'rowwise', since torchao casts weights to float8 before the FSDP all-gather only with "
            "tensorwise scaling"
        )
    config = Float8LinearConfig.from_recipe_name(recipe.value)
    # emulate=False always: an emulated config computes float8 numerics with high-precision matmuls, so FP8
    # would look on and never pay (contract clause C5e).
    return dataclasses.replace(
        config, enable_fsdp_float8_all_gather=settings.enable_fsdp_float8_all_gather, emulate=False
    )


def build_module_filter(settings: FP8Settings) -> ModuleFilter:
    """The module filter of ``settings`` (size-aware when ``fp8_auto_filter`` is set)."""
    return make_module_filter(settings.effective_recipe, size_aware=settings.auto_filter)


def _torchao_handler(settings: FP8Settings) -> KwargsHandler:
    from accelerate.utils import AORecipeKwargs

    config = build_torchao_config(settings)
    module_filter = build_module_filter(settings)
    logger.info(
        "FP8 with torchao: recipe %s, FSDP float8 all-gather %s, filter %s",
        settings.effective_recipe.value,
        settings.enable_fsdp_float8_all_gather,
        "size-aware" if settings.auto_filter else "default",
    )
    handler: KwargsHandler = AORecipeKwargs(config=config, module_filter_func=module_filter)
    return handler


def _te_handler(settings: FP8Settings, *, deepspeed: bool) -> KwargsHandler:
    import accelerate.utils

    if settings.enable_fsdp_float8_all_gather:
        logger.warning(
            "fp8_enable_fsdp_float8_all_gather=True has no effect with Transformer Engine: it is a torchao "
            "feature. Use fp8_backend='torchao' for float8 FSDP all-gather."
        )
    if settings.recipe is not None:
        logger.warning(
            "fp8_recipe=%r is a torchao recipe and has no effect with Transformer Engine, which uses DelayedScaling %s",
            settings.recipe.value,
            TE_FP8_FORMAT,
        )
    recipe: dict[str, Any] = {
        "fp8_format": TE_FP8_FORMAT,
        "amax_history_len": TE_AMAX_HISTORY_LEN,
        "amax_compute_algo": TE_AMAX_COMPUTE_ALGO,
    }
    te_recipe_cls = getattr(accelerate.utils, "TERecipeKwargs", None)
    try:
        if deepspeed:
            handler = te_handler_for_deepspeed(recipe)
        elif te_recipe_cls is not None:
            handler = te_recipe_cls(**recipe)
        else:
            handler = _fp8_recipe_kwargs(recipe)
    except ImportError as exc:  # accelerate also checks the installed metadata of transformer-engine
        raise FP8BackendUnavailableError(
            f"accelerate cannot find transformer-engine ({exc}). Install it: {INSTALL_HINT[Backend.TE]}."
        ) from exc
    logger.info(
        "FP8 with Transformer Engine: DelayedScaling %s, amax_history_len=%d, amax_compute_algo=%s (%s)",
        TE_FP8_FORMAT,
        TE_AMAX_HISTORY_LEN,
        TE_AMAX_COMPUTE_ALGO,
        type(handler).__name__,
    )
    return handler


def _fp8_recipe_kwargs(fields: dict[str, Any]) -> KwargsHandler:
    """``FP8RecipeKwargs(backend="TE", **fields)``, without the ``FutureWarning`` its constructor issues: fp8ref
    chooses the deprecated class on purpose (see :func:`te_handler_for_deepspeed`), the user did not."""
    from accelerate.utils import FP8RecipeKwargs

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*FP8RecipeKwargs is deprecated.*", category=FutureWarning)
        handler: KwargsHandler = FP8RecipeKwargs(backend="TE", **fields)
    return handler


def te_handler_for_deepspeed(fields: dict[str, Any]) -> KwargsHandler:
    """The Transformer Engine recipe ``fields`` as the handler that accelerate's DeepSpeed path reads.

    Under DeepSpeed, accelerate (1.11 to 1.15) wraps the model's forward in ``Accelerator._prepare_deepspeed``
    with ``apply_fp8_autowrap(model, self.fp8_recipe_handler)``: only the deprecated ``FP8RecipeKwargs`` lands in
    that attribute, and a ``TERecipeKwargs`` (``te_recipe_handler``) is not read there, so TE's default recipe
    (``DelayedScaling()``, amax history 1024) would run instead of the one built. Without DeepSpeed, accelerate
    reads ``te_recipe_handler or fp8_recipe_handler``, so this handler serves there too. On an accelerate without
    ``FP8RecipeKwargs`` the ``TERecipeKwargs`` is returned.
    """
    import accelerate.utils

    if getattr(accelerate.utils, "FP8RecipeKwargs", None) is None:
        logger.info("accelerate has no FP8RecipeKwargs: the Transformer Engine recipe is a TERecipeKwargs")
        te_handler: KwargsHandler = accelerate.utils.TERecipeKwargs(**fields)
        return te_handler
    return _fp8_recipe_kwargs(fields)


def build_fp8_handler(settings: FP8Settings, *, deepspeed: bool = False) -> KwargsHandler:
    """The single FP8 recipe handler of an enabled request whose backend is resolved
    (:func:`~fp8ref.backends.resolve_settings`).

    ``deepspeed``: the run uses DeepSpeed; a Transformer Engine recipe is then an ``FP8RecipeKwargs`` (see
    :func:`te_handler_for_deepspeed`). It changes nothing for torchao.
    """
    if settings.backend is Backend.AUTO:
        raise FP8ConfigError("build_fp8_handler needs a resolved backend: resolve_settings(settings) first")
    if settings.backend is Backend.TE:
        return _te_handler(settings, deepspeed=deepspeed)
    return _torchao_handler(settings)


def create_fp8_kwargs(training_args: Any) -> list[KwargsHandler]:
    """The accelerate ``kwargs_handlers`` for FP8: one recipe handler, or ``[]`` when FP8 is off.

    Raises :class:`~fp8ref.errors.FP8ConfigError` (a ``ValueError``) for invalid arguments and
    :class:`~fp8ref.errors.FP8BackendUnavailableError` (an ``ImportError``) when the backend cannot be
    imported: an enabled FP8 request never quietly becomes ``[]``.

    Under DeepSpeed (``training_args.deepspeed`` set, or ``ACCELERATE_USE_DEEPSPEED=true`` as ``accelerate launch``
    sets it from a DeepSpeed config) the Transformer Engine recipe comes as ``FP8RecipeKwargs(backend="TE")``,
    the only handler accelerate's DeepSpeed path reads (see :func:`te_handler_for_deepspeed`).
    """
    settings = FP8Settings.from_training_args(training_args)
    if not settings.enabled:
        return []
    return [build_fp8_handler(resolve_settings(settings), deepspeed=deepspeed_requested(training_args))]


def recipe_name_of(config: Any) -> str:
    """Name the torchao recipe a ``Float8LinearConfig`` implements (``"custom"`` when none matches)."""
    from torchao.float8 import Float8LinearConfig

    for recipe in TorchaoRecipe:
        reference = Float8LinearConfig.from_recipe_name(recipe.value)
        fields = {f.name for f in dataclasses.fields(reference)} - {
            "enable_fsdp_float8_all_gather",
            "emulate",
            "pad_inner_dim",
        }
        if all(getattr(config, name, None) == getattr(reference, name) for name in fields):
            return recipe.value
    return "custom"
