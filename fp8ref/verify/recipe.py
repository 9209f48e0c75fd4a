"""The FP8 backend and recipe an accelerator holds."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from fp8ref.config import Backend
from fp8ref.deepspeed_check import runs_deepspeed

TE_RECIPE_FIELDS = ("fp8_format", "amax_history_len", "amax_compute_algo")


def backend_name(accelerator: Any) -> str | None:
    """``AO``, ``TE``, ``MSAMP`` or None: accelerate's ``fp8_backend`` as a plain string."""
    backend = getattr(accelerator, "fp8_backend", None)
    if backend is None:
        return None
    return str(getattr(backend, "value", backend))


def recipe_of(accelerator: Any, backend: Backend | None) -> str | None:
    """A short name of the recipe the accelerator's FP8 handler holds."""
    if backend is Backend.TORCHAO:
        handler = getattr(accelerator, "ao_recipe_handler", None)
        config = getattr(handler, "config", None)
        if config is None:
            return None
        from fp8ref.recipes import recipe_name_of

        name = recipe_name_of(config)
        if getattr(config, "enable_fsdp_float8_all_gather", False):
            name += " + fsdp float8 all-gather"
        return name
    if backend is Backend.TE:
        handler = getattr(accelerator, "te_recipe_handler", None) or getattr(accelerator, "fp8_recipe_handler", None)
        if handler is None:
            return None
        fmt, history, algo = (getattr(handler, name, "?") for name in TE_RECIPE_FIELDS)
        return f"DelayedScaling {fmt}, amax_history_len={history}, amax_compute_algo={algo}"
    return None


# ------------------------------------------------------------------ Transformer Engine: the recipe in effect

#: Where :func:`te_recipe_in_effect` found the recipe.
SOURCE_FORWARD = "read from the fp8_autocast wrapper of the prepared forward"
SOURCE_DERIVED = "derived from the accelerator's handlers as accelerate 1.15's prepare builds it"

# accelerate's contextual_fp8_autocast: the closure variable that holds the recipe passed to fp8_autocast.
_RECIPE_FREEVAR = "fp8_recipe"
_MAX_WRAPPERS = 16


@dataclass(frozen=True)
class TERecipe:
    """The fields of a Transformer Engine recipe that C7 judges, as plain values."""

    kind: str  # "DelayedScaling", "MXFP8BlockScaling", ...
    fp8_format: str | None
    amax_history_len: int | None
    amax_compute_algo: str | None

    def describe(self) -> str:
        if self.kind != "DelayedScaling":
            return f"{self.kind} {self.fp8_format or '?'}"
        return (
            f"DelayedScaling {self.fp8_format or '?'}, amax_history_len={self.amax_history_len}, "
            f"amax_compute_algo={self.amax_compute_algo}"
        )

    def fields(self) -> tuple[str | None, int | None, str | None]:
        return self.fp8_format, self.amax_history_len, self.amax_compute_algo

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _format_name(value: Any) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", value)  # transformer_engine.common.recipe.Format.HYBRID -> "HYBRID"
    return str(name).upper()


def _algo_name(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else getattr(value, "__name__", repr(value))


def recipe_from_te_object(recipe: Any) -> TERecipe:
    """The C7 fields of a TE recipe object (``DelayedScaling``, ``MXFP8BlockScaling``, ...)."""
    history = getattr(recipe, "amax_history_len", None)
    return TERecipe(
        kind=type(recipe).__name__,
        fp8_format=_format_name(getattr(recipe, "fp8_format", None)),
        amax_history_len=int(history) if isinstance(history, int) else None,
        amax_compute_algo=_algo_name(getattr(recipe, "amax_compute_algo", None)),
    )


def te_handler_asked(accelerator: Any) -> Any:
    """The TE recipe handler the accelerator holds: ``te_recipe_handler``, else the deprecated
    ``fp8_recipe_handler`` (the order of accelerate's ``_prepare_one``)."""
    return getattr(accelerator, "te_recipe_handler", None) or getattr(accelerator, "fp8_recipe_handler", None)


def te_recipe_asked(accelerator: Any) -> TERecipe | None:
    """The recipe the accelerator's TE handler asks for (what was built)."""
    handler = te_handler_asked(accelerator)
    if handler is None:
        return None
    history = getattr(handler, "amax_history_len", None)
    mxfp8 = bool(getattr(handler, "use_mxfp8_block_scaling", False))
    return TERecipe(
        kind="MXFP8BlockScaling" if mxfp8 else "DelayedScaling",
        fp8_format=_format_name(getattr(handler, "fp8_format", None)),
        amax_history_len=None if mxfp8 or not isinstance(history, int) else history,
        amax_compute_algo=None if mxfp8 else _algo_name(getattr(handler, "amax_compute_algo", None)),
    )


def _forward_functions(obj: Any) -> Iterator[Any]:
    """The functions behind ``obj.forward``: the bound method's function, then what each wrapper wraps
    (accelerate's wrappers set ``__wrapped__``)."""
    current = getattr(obj, "forward", None)
    for _ in range(_MAX_WRAPPERS):
        if current is None:
            return
        function = getattr(current, "__func__", current)
        yield function
        current = getattr(function, "__wrapped__", None)


def _recipe_in_closure(function: Any) -> tuple[bool, Any]:
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None)
    if code is None or not closure or _RECIPE_FREEVAR not in code.co_freevars:
        return False, None
    cell = closure[code.co_freevars.index(_RECIPE_FREEVAR)]
    try:
        return True, cell.cell_contents
    except ValueError:  # an empty cell
        return False, None


def _wrapped_objects(model: Any) -> Iterator[Any]:
    """``model`` and what it wraps: DDP / DeepSpeed ``.module``, ``torch.compile``'s ``_orig_mod``."""
    seen: set[int] = set()
    pending = [model]
    while pending:
        obj = pending.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        pending += [vars(obj).get("_orig_mod") if hasattr(obj, "__dict__") else None]
        modules = getattr(obj, "_modules", None) or {}
        pending += [modules.get("module"), modules.get("_orig_mod")]


def recipe_in_forward(raw_models: Iterable[Any]) -> TERecipe | None:
    """The recipe that accelerate's TE autocast wrapper of a prepared model's forward passes to
    ``fp8_autocast`` (``contextual_fp8_autocast``), or None when no prepared model has that wrapper."""
    for model in raw_models:
        for obj in _wrapped_objects(model):
            for function in _forward_functions(obj):
                found, recipe = _recipe_in_closure(function)
                if found:
                    return None if recipe is None else recipe_from_te_object(recipe)
    return None


def _te_recipe_defaults() -> dict[str, Any]:
    """The defaults of TE's ``DelayedScaling`` (imported only here, when TE is the backend in use)."""
    import dataclasses

    from transformer_engine.common.recipe import DelayedScaling

    if dataclasses.is_dataclass(DelayedScaling):
        return {f.name: f.default for f in dataclasses.fields(DelayedScaling)}
    return {name: getattr(DelayedScaling(), name, None) for name in TE_RECIPE_FIELDS}


def derive_recipe(accelerator: Any) -> TERecipe | None:
    """The recipe accelerate 1.15's ``prepare`` builds for the TE forward, from the accelerator's state:
    under DeepSpeed ``_prepare_deepspeed`` passes ``fp8_recipe_handler`` (the deprecated ``FP8RecipeKwargs``)
    only, elsewhere ``_prepare_one`` passes ``te_recipe_handler or fp8_recipe_handler``; ``apply_fp8_autowrap``
    then builds ``DelayedScaling(**handler.to_kwargs())``, and ``to_kwargs`` keeps only the fields that differ
    from the handler class's defaults, so every other field takes TE's default. None when TE cannot say."""
    deepspeed = runs_deepspeed(accelerator)
    handler = getattr(accelerator, "fp8_recipe_handler", None) if deepspeed else te_handler_asked(accelerator)
    try:
        with warnings.catch_warnings():
            # to_kwargs builds a default instance of the handler's class: FP8RecipeKwargs warns it is deprecated
            warnings.simplefilter("ignore", FutureWarning)
            kwargs: dict[str, Any] = handler.to_kwargs() if handler is not None else {}
        defaults = _te_recipe_defaults()
    except ImportError:
        return None
    if kwargs.get("use_mxfp8_block_scaling"):
        return TERecipe("MXFP8BlockScaling", _format_name(kwargs.get("fp8_format", "E4M3")), None, None)
    history = kwargs.get("amax_history_len", defaults.get("amax_history_len"))
    return TERecipe(
        kind="DelayedScaling",
        fp8_format=_format_name(kwargs.get("fp8_format", defaults.get("fp8_format"))),
        amax_history_len=history if isinstance(history, int) else None,
        amax_compute_algo=_algo_name(kwargs.get("amax_compute_algo", defaults.get("amax_compute_algo"))),
    )


def te_recipe_in_effect(accelerator: Any, raw_models: Iterable[Any]) -> tuple[TERecipe | None, str | None]:
    """The recipe the TE forward runs with, and where it was found: the prepared forward's autocast wrapper
    when there is one, else derived as accelerate does (before ``prepare``, or if the wrapper is not found)."""
    found = recipe_in_forward(raw_models)
    if found is not None:
        return found, SOURCE_FORWARD
    derived = derive_recipe(accelerator)
    return derived, (SOURCE_DERIVED if derived is not None else None)


def dropped_under_deepspeed(accelerator: Any) -> bool:
    """Whether accelerate 1.15's DeepSpeed path drops the accelerator's TE recipe: under DeepSpeed it reads
    only ``fp8_recipe_handler``, and here a ``TERecipeKwargs`` sits in ``te_recipe_handler`` alone."""
    deepspeed = runs_deepspeed(accelerator)
    return (
        deepspeed
        and getattr(accelerator, "fp8_recipe_handler", None) is None
        and getattr(accelerator, "te_recipe_handler", None) is not None
    )


def recipe_mismatch_notice(asked: TERecipe, in_effect: TERecipe, source: str, dropped: bool) -> str:
    """The warning when the TE forward runs with another recipe than the one the accelerator's handler holds."""
    cause = (
        "accelerate 1.15's DeepSpeed path (Accelerator._prepare_deepspeed) wraps the forward with "
        "apply_fp8_autowrap(model, self.fp8_recipe_handler), which reads only the deprecated FP8RecipeKwargs: "
        "the TERecipeKwargs in te_recipe_handler is dropped and TE's default recipe runs. Fix: hand the DeepSpeed "
        "path the recipe, e.g. kwargs_handlers=[FP8RecipeKwargs(backend='TE', fp8_format='HYBRID', "
        "amax_history_len=16, amax_compute_algo='max')] (FP8RecipeKwargs is deprecated but it is the handler "
        "that path reads)"
        if dropped
        else "accelerate builds DelayedScaling(**handler.to_kwargs()), and to_kwargs keeps only the fields that "
        "differ from the handler class's defaults, so the others take TE's defaults"
    )
    return (
        f"the Transformer Engine forward runs with {in_effect.describe()} ({source}), not the recipe the "
        f"accelerator's handler holds ({asked.describe()}): {cause}"
    )
