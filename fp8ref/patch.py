"""Make every ``Accelerator()`` carry fp8ref's FP8 recipe.

The HF ``Trainer`` builds its own ``Accelerator`` and passes no FP8 handler (it always passes a
``DistributedDataParallelKwargs``), and passes ``mixed_precision=args.mixed_precision``, which
``TrainingArguments`` computed when they were built (``"no"`` or ``"bf16"`` when that was before
:func:`~fp8ref.environment.configure_fp8_environment`, as in LLaMA-Factory). Without a handler, accelerate makes
up its own recipe from ``ACCELERATE_MIXED_PRECISION=fp8``: for torchao that is tensorwise with FSDP float8
all-gather on and its own module filter, which is not what the user asked for.

:func:`patch_accelerator_for_fp8` (which ``configure_fp8_environment`` also installs) changes, on the
``Accelerator`` class and accelerate's ``accelerator`` module, and nowhere else:

- ``Accelerator.__init__``: the FP8 handler built by :func:`~fp8ref.recipes.create_fp8_kwargs` is added to
  whatever handlers the caller passes, unless the caller already passes an FP8 handler, and
  ``mixed_precision`` becomes ``"fp8"``. Under DeepSpeed a Transformer Engine recipe is also handed to the
  handler that accelerate's DeepSpeed path reads (:func:`_hand_te_recipe_to_deepspeed`);
- ``Accelerator._prepare_ao``: optimizers follow the weights that torchao replaces
  (:func:`~fp8ref.optimizer_remap.prepare_ao_keeping_optimizers`);
- ``Accelerator.fp8_backend``: an Accelerator that is not in FP8 has no FP8 backend
  (:func:`_fp8_backend_only_in_fp8`, contract clause C8g);
- ``accelerate.accelerator.convert_model``, with Transformer Engine only (:mod:`fp8ref.te_convert`).

:func:`unpatch_accelerator_for_fp8` puts all of them back.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from fp8ref.backends import resolve_settings
from fp8ref.config import Backend, FP8Settings
from fp8ref.deepspeed_check import check_deepspeed_compatible, deepspeed_requested, runs_deepspeed
from fp8ref.optimizer_remap import prepare_ao_keeping_optimizers
from fp8ref.recipes import build_fp8_handler, build_module_filter, te_handler_for_deepspeed
from fp8ref.variables import settings_from_environment

logger = logging.getLogger(__name__)

_PATCH_MARKER = "__fp8ref_patch__"
_ORIGINAL_INIT = "_fp8ref_original_init"
_SETTINGS = "_fp8ref_settings"
_ORIGINAL_PREPARE_AO = "_fp8ref_original_prepare_ao"
_ORIGINAL_FP8_BACKEND = "_fp8ref_original_fp8_backend"
#: Every name fp8ref adds to the ``Accelerator`` class (test isolation removes them).
CLASS_ATTRIBUTES = (_ORIGINAL_INIT, _SETTINGS, _ORIGINAL_PREPARE_AO, _ORIGINAL_FP8_BACKEND)

_FP8_HANDLER_CLASS_NAMES = ("AORecipeKwargs", "TERecipeKwargs", "FP8RecipeKwargs", "MSAMPRecipeKwargs")


def _fp8_handler_classes() -> tuple[type, ...]:
    import accelerate.utils

    return tuple(cls for name in _FP8_HANDLER_CLASS_NAMES if (cls := getattr(accelerate.utils, name, None)) is not None)


def is_accelerator_patched() -> bool:
    """Whether ``Accelerator.__init__`` currently carries fp8ref's patch."""
    from accelerate import Accelerator

    return bool(getattr(Accelerator.__init__, _PATCH_MARKER, False))


def _patched_init(original_init: Callable[..., None]) -> Callable[..., None]:
    """``Accelerator.__init__`` that adds the handler of the request :func:`install_fp8_patch` installed last."""
    signature = inspect.signature(original_init)

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        from accelerate import Accelerator

        settings: FP8Settings = getattr(Accelerator, _SETTINGS)
        bound = signature.bind(self, *args, **kwargs)
        arguments = bound.arguments
        handlers = list(arguments.get("kwargs_handlers") or [])
        if any(isinstance(handler, _fp8_handler_classes()) for handler in handlers):
            logger.debug("Accelerator() got an FP8 handler from its caller: keeping it")
        else:
            handlers.append(build_fp8_handler(settings))
            logger.info("fp8ref: added the FP8 recipe handler to Accelerator(kwargs_handlers=...)")
        arguments["kwargs_handlers"] = handlers
        _refuse_all_gather_under_deepspeed(arguments, handlers)
        requested = arguments.get("mixed_precision")
        if requested not in (None, "fp8"):
            logger.info("fp8ref: Accelerator(mixed_precision=%r) overridden by 'fp8'", requested)
        arguments["mixed_precision"] = "fp8"
        original_init(*bound.args, **bound.kwargs)
        _hand_te_recipe_to_deepspeed(self)

    setattr(__init__, _PATCH_MARKER, True)
    return __init__


def _hand_te_recipe_to_deepspeed(accelerator: Any) -> None:
    """Under DeepSpeed, give the Transformer Engine recipe to the handler that accelerate's DeepSpeed path reads.

    accelerate (1.11 to 1.15) wraps the forward under DeepSpeed in ``_prepare_deepspeed`` with
    ``apply_fp8_autowrap(model, self.fp8_recipe_handler)``; ``__init__`` puts only the deprecated ``FP8RecipeKwargs``
    there and a ``TERecipeKwargs`` in ``te_recipe_handler``, which that path does not read: TE's default recipe
    (amax history 1024) would run instead. Decided after ``__init__``, from ``distributed_type``, so it holds
    however DeepSpeed was asked for (``TrainingArguments(deepspeed=...)``, ``accelerate launch`` with a DeepSpeed
    config, ``ACCELERATE_USE_DEEPSPEED``, a ``deepspeed_plugin``). The ``TERecipeKwargs`` stays where it is, and
    the same recipe, as an ``FP8RecipeKwargs``, goes to ``fp8_recipe_handler``.
    """
    te_handler = getattr(accelerator, "te_recipe_handler", None)
    if te_handler is None or getattr(accelerator, "fp8_recipe_handler", None) is not None:
        return
    if not runs_deepspeed(accelerator):
        return
    fields = {field.name: getattr(te_handler, field.name) for field in dataclasses.fields(te_handler)}
    accelerator.fp8_recipe_handler = te_handler_for_deepspeed(fields)
    logger.info(
        "fp8ref: under DeepSpeed, accelerate reads the Transformer Engine recipe from fp8_recipe_handler only: "
        "handed it the recipe of te_recipe_handler (%s)",
        ", ".join(f"{name}={fields.get(name)!r}" for name in ("fp8_format", "amax_history_len", "amax_compute_algo")),
    )


def _fp8_backend_only_in_fp8(original: property) -> property:
    """``Accelerator.fp8_backend`` that is ``NO`` on an Accelerator that is not in FP8 (contract clause C8g).

    accelerate's property falls back to ``ACCELERATE_FP8_BACKEND`` when the Accelerator holds no FP8 handler, even
    when it is not in FP8, and ``prepare`` then takes the FP8 path without a recipe: with ``AO`` it fails in
    ``_prepare_ao`` (``AttributeError: 'NoneType' object has no attribute 'config'``). That happens to an
    ``Accelerator(mixed_precision="no")``, or to one built before ``configure_fp8_environment``, once the variable
    is set. Here the variable is read only while the Accelerator is in FP8 or holds an FP8 handler (inside
    ``__init__``, where accelerate picks its default recipe, and after it), and for DeepSpeed's MS-AMP.
    """
    getter = original.fget
    assert getter is not None

    @functools.wraps(getter)
    def fp8_backend(self: Any) -> Any:
        from accelerate.utils.dataclasses import FP8BackendType

        in_fp8 = getattr(self, "fp8_enabled", True) or getattr(self, "has_fp8_handler", True)
        state = getattr(self, "state", None)
        plugin = getattr(state, "deepspeed_plugin", None) if state is not None else None
        if in_fp8 or getattr(plugin, "enable_msamp", False):
            return getter(self)
        return FP8BackendType.NO

    guarded = property(fp8_backend, original.fset, original.fdel, original.__doc__)
    setattr(fp8_backend, _PATCH_MARKER, True)
    return guarded


def _install_fp8_backend_guard() -> None:
    from accelerate import Accelerator

    current = vars(Accelerator).get("fp8_backend")
    if not isinstance(current, property) or getattr(current.fget, _PATCH_MARKER, False):
        return
    setattr(Accelerator, _ORIGINAL_FP8_BACKEND, current)
    setattr(Accelerator, "fp8_backend", _fp8_backend_only_in_fp8(current))  # noqa: B010 - a property of accelerate


def _remove_fp8_backend_guard() -> None:
    from accelerate import Accelerator

    original = vars(Accelerator).get(_ORIGINAL_FP8_BACKEND)
    if original is not None:
        setattr(Accelerator, "fp8_backend", original)  # noqa: B010 - a property of accelerate
        delattr(Accelerator, _ORIGINAL_FP8_BACKEND)


def _refuse_all_gather_under_deepspeed(arguments: dict[str, Any], handlers: list[Any]) -> None:
    """C16c: the FSDP float8 all-gather under DeepSpeed is an ``FP8ConfigError`` here, before ``prepare``."""
    deepspeed = bool(arguments.get("deepspeed_plugin") or arguments.get("deepspeed_plugins")) or deepspeed_requested()
    configs = [getattr(handler, "config", None) for handler in handlers]
    all_gather = any(bool(getattr(config, "enable_fsdp_float8_all_gather", False)) for config in configs)
    check_deepspeed_compatible(all_gather, deepspeed=deepspeed, where="Accelerator() runs under DeepSpeed")


def _remove_te_converter() -> None:
    import accelerate.accelerator as accelerator_module

    original = getattr(accelerator_module.convert_model, "__fp8ref_original__", None)
    if original is not None:
        accelerator_module.convert_model = original


def patch_accelerator_for_fp8(training_args: Any = None) -> None:
    """Wrap ``Accelerator.__init__`` so that every ``Accelerator()`` gets fp8ref's FP8 recipe handler.

    ``training_args`` gives the FP8 request; without it the request is read from the environment that
    :func:`~fp8ref.environment.configure_fp8_environment` set. The handler is built once here, so an
    unusable backend fails now (``FP8BackendUnavailableError``, an ``ImportError``), not at the first
    ``Accelerator()``. With torchao this never imports ``transformer_engine``. With Transformer Engine
    it also replaces accelerate's TE conversion by one that honours the module filter (see
    :mod:`fp8ref.te_convert`), and under DeepSpeed hands the recipe to the handler accelerate's DeepSpeed path
    reads. An ``Accelerator`` whose caller passes ``mixed_precision`` (the HF ``Trainer`` does) runs FP8 all the
    same. ``configure_fp8_environment`` installs the same patch itself (:func:`install_fp8_patch`, with the request
    it was given); calling it again updates the request without wrapping twice. Everything it changes is listed in
    :mod:`fp8ref.patch`; :func:`unpatch_accelerator_for_fp8` undoes it.
    """
    settings = settings_from_environment() if training_args is None else FP8Settings.from_training_args(training_args)
    if not settings.enabled:
        logger.info("patch_accelerator_for_fp8: FP8 is not requested; Accelerator left as it is")
        return
    install_fp8_patch(resolve_settings(settings))


def install_fp8_patch(settings: FP8Settings) -> None:
    """:func:`patch_accelerator_for_fp8` for an enabled request whose backend is resolved and usable
    (:func:`~fp8ref.backends.resolve_settings`): every ``Accelerator()`` from now on gets the handler of
    ``settings``; a second call replaces the request."""
    import accelerate.accelerator as accelerator_module
    from accelerate import Accelerator

    build_fp8_handler(settings)  # fail now, not inside the Trainer
    setattr(Accelerator, _SETTINGS, settings)
    if settings.backend is Backend.TE:
        from fp8ref.te_convert import make_accelerate_converter

        current = accelerator_module.convert_model
        original = getattr(current, "__fp8ref_original__", current)
        accelerator_module.convert_model = make_accelerate_converter(original, build_module_filter(settings))
    else:
        _remove_te_converter()
    _install_fp8_backend_guard()
    if is_accelerator_patched():
        logger.debug("Accelerator.__init__ is already patched: FP8 request updated")
        return
    setattr(Accelerator, _ORIGINAL_INIT, Accelerator.__init__)
    Accelerator.__init__ = _patched_init(Accelerator.__init__)
    if hasattr(Accelerator, "_prepare_ao"):
        setattr(Accelerator, _ORIGINAL_PREPARE_AO, Accelerator._prepare_ao)
        Accelerator._prepare_ao = prepare_ao_keeping_optimizers(Accelerator._prepare_ao)
        setattr(Accelerator._prepare_ao, _PATCH_MARKER, True)
    logger.info("patched Accelerator.__init__ to inject the FP8 recipe (%s)", settings.backend.value)


def guard_accelerator_outside_fp8() -> None:
    """Install only the ``fp8_backend`` fix of contract clause C8g (see :func:`_fp8_backend_only_in_fp8`), and drop
    an earlier FP8 request: what ``configure_fp8_environment`` does when the backend it names is not usable here,
    so that no handler can be built (``Accelerator()`` then fails in accelerate, loudly)."""
    _remove_init_patch()
    _remove_te_converter()
    _install_fp8_backend_guard()


def _remove_init_patch() -> bool:
    from accelerate import Accelerator

    if hasattr(Accelerator, _SETTINGS):
        delattr(Accelerator, _SETTINGS)
    if not is_accelerator_patched():
        return False
    Accelerator.__init__ = getattr(Accelerator, _ORIGINAL_INIT)
    delattr(Accelerator, _ORIGINAL_INIT)
    if hasattr(Accelerator, _ORIGINAL_PREPARE_AO):
        Accelerator._prepare_ao = getattr(Accelerator, _ORIGINAL_PREPARE_AO)
        delattr(Accelerator, _ORIGINAL_PREPARE_AO)
    return True


def unpatch_accelerator_for_fp8() -> bool:
    """Put back everything :func:`patch_accelerator_for_fp8` (or ``configure_fp8_environment``) changed in
    accelerate; returns whether ``Accelerator.__init__`` was patched. The environment is left as it is."""
    _remove_te_converter()
    _remove_fp8_backend_guard()
    return _remove_init_patch()
