"""A compact ``configure_fp8_environment`` and ``patch_accelerator_for_fp8`` for the broken implementations of C13
and G2 to G4, each of which breaks one rule of the patch.

With :class:`PatchDefect`'s defaults it follows C13: configure sets only the environment (C8), the patch wraps
``Accelerator.__init__`` once so that an FP8 handler built by fp8ref's ``create_fp8_kwargs`` joins the handlers
passed (unless one is an FP8 handler already, kept as it is), and with Transformer Engine it replaces accelerate's
TE conversion by one that follows the contract's filter and does not stop at an odd-sized layer. Each
``fp8broken_*`` module that uses it sets one knob; its other three functions are fp8ref's.

The broken modules use this instead of fp8ref's own configure and patch so that their defect stays the one they
name whatever fp8ref's patch becomes (fp8ref's configure may patch accelerate itself, which would hide it). Not a
module the suite is run against (no contract functions here).
"""

from __future__ import annotations

import importlib.util
import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fp8ref import create_fp8_kwargs

_FP8_HANDLERS = ("AORecipeKwargs", "TERecipeKwargs", "FP8RecipeKwargs", "MSAMPRecipeKwargs")
_MARK = "_fp8broken_patch"


@dataclass(frozen=True)
class PatchDefect:
    #: How handlers passed in a tuple are treated: like a list (``any``); passed through untouched, so nothing is
    #: injected (``ignored``); or searched for no FP8 handler, so one is injected beside the caller's (``blind``).
    tuples: str = "any"
    #: Whether an explicit torchao handler is given the implementation's module filter (the caller's is lost).
    retune_explicit: bool = False
    #: Whether the TE conversion follows the filter's name rules (False: every size-eligible layer, heads too).
    te_names: bool = True
    #: torchao: the handler converts nothing, and the layers are converted after ``prepare`` by building new
    #: ``Float8Linear`` modules, on torch's default device, and copying the weights in.
    convert_after_prepare: bool = False


def _backend(training_args: Any) -> str:
    name = str(getattr(training_args, "fp8_backend", "auto") or "auto").lower()
    if name not in ("auto", "torchao", "te"):
        raise ValueError(f"fp8_backend must be one of auto, torchao, te; got {name!r}")
    if name == "auto":
        return "torchao" if importlib.util.find_spec("torchao") is not None else "te"
    return name


def configure_fp8_environment(training_args: Any) -> None:
    """C8: the three variables, nothing else."""
    backend = _backend(training_args)
    if not getattr(training_args, "fp8", False):
        return
    all_gather = bool(getattr(training_args, "fp8_enable_fsdp_float8_all_gather", False))
    os.environ["ACCELERATE_MIXED_PRECISION"] = "fp8"
    os.environ["ACCELERATE_FP8_BACKEND"] = "AO" if backend == "torchao" else "TE"
    os.environ["ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER"] = "true" if all_gather else "false"


def _args_from_environment() -> types.SimpleNamespace:
    backend = {"AO": "torchao", "TE": "te"}.get(os.environ.get("ACCELERATE_FP8_BACKEND", "").upper(), "auto")
    all_gather = os.environ.get("ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER", "false").lower() == "true"
    return types.SimpleNamespace(fp8=True, fp8_backend=backend, fp8_enable_fsdp_float8_all_gather=all_gather)


def _size_only(module: nn.Module, fqn: str) -> bool:
    return isinstance(module, nn.Linear) and module.in_features % 16 == 0 and module.out_features % 16 == 0


def _te_converter(accept: Callable[[nn.Module, str], bool]) -> Callable[..., None]:
    def convert_model(model: nn.Module, *args: Any, **kwargs: Any) -> None:
        import transformer_engine.pytorch as te

        for fqn, layer in [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and accept(m, n)]:
            parent, _, name = fqn.rpartition(".")
            new = te.Linear(
                layer.in_features,
                layer.out_features,
                bias=layer.bias is not None,
                params_dtype=layer.weight.dtype,
                device=layer.weight.device,
            )
            with torch.no_grad():
                new.weight.copy_(layer.weight)
                if layer.bias is not None:
                    new.bias.copy_(layer.bias)
            setattr(model.get_submodule(parent), name, new)

    return convert_model


def _convert_after_prepare(accelerator_class: Any, accept: Callable[[nn.Module, str], bool], config: Any) -> None:
    from torchao.float8.float8_linear import Float8Linear

    original = accelerator_class.prepare

    def prepare(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        for model in [self.unwrap_model(m) for m in getattr(self, "_models", [])]:
            for fqn, layer in [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear and accept(m, n)]:
                parent, _, name = fqn.rpartition(".")
                new = Float8Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, config=config)
                with torch.no_grad():
                    new.weight.copy_(layer.weight)
                    if layer.bias is not None:
                        new.bias.copy_(layer.bias)
                setattr(model.get_submodule(parent), name, new.to(layer.weight.dtype))
        return result

    accelerator_class.prepare = prepare


def patch_functions(defect: PatchDefect) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """The compact configure and a patch with ``defect``: the two functions a module of this kit replaces."""
    return configure_fp8_environment, make_patch(defect)


def make_patch(defect: PatchDefect) -> Callable[[], None]:
    def patch_accelerator_for_fp8() -> None:
        import accelerate.accelerator
        from accelerate import Accelerator

        args = _args_from_environment()
        (handler,) = create_fp8_kwargs(args)  # an unusable backend fails here (C13e)
        accept = handler.module_filter_func if hasattr(handler, "module_filter_func") else None
        if args.fp8_backend == "te" or (args.fp8_backend == "auto" and not hasattr(handler, "config")):
            rule = create_fp8_kwargs(types.SimpleNamespace(fp8=True, fp8_backend="torchao"))[0].module_filter_func
            accelerate.accelerator.convert_model = _te_converter(rule if defect.te_names else _size_only)
        if getattr(Accelerator.__init__, _MARK, False):
            return
        if defect.convert_after_prepare and accept is not None:
            _convert_after_prepare(Accelerator, accept, handler.config)
        original_init = Accelerator.__init__

        def __init__(self: Any, *positional: Any, **kwargs: Any) -> None:
            passed = kwargs.get("kwargs_handlers")
            if not (isinstance(passed, tuple) and defect.tuples == "ignored"):
                handlers = list(passed or [])
                seen = [] if isinstance(passed, tuple) and defect.tuples == "blind" else handlers
                explicit = [h for h in seen if type(h).__name__ in _FP8_HANDLERS]
                for given in explicit if defect.retune_explicit else []:
                    if hasattr(given, "module_filter_func") and accept is not None:
                        given.module_filter_func = accept
                if not explicit:
                    (injected,) = create_fp8_kwargs(args)
                    if defect.convert_after_prepare and hasattr(injected, "module_filter_func"):
                        injected.module_filter_func = lambda module, fqn: False
                    handlers.append(injected)
                kwargs["kwargs_handlers"] = handlers
            kwargs["mixed_precision"] = "fp8"
            original_init(self, *positional, **kwargs)

        setattr(__init__, _MARK, True)
        Accelerator.__init__ = __init__

    return patch_accelerator_for_fp8
