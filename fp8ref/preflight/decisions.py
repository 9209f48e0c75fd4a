"""What the accelerator will do at ``prepare``, read from it and from the installed accelerate's own code.

- FP8 on or off, and why (:mod:`fp8ref.verify.reasons`), the backend and the recipe its handler holds;
- each linear layer converted or not: accelerate's own conversion (``_prepare_ao``, or ``_prepare_te`` with the
  converter in place, fp8ref's or accelerate's) runs on the meta model, as ``prepare`` dispatches it; for
  Transformer Engine its ``Linear`` and ``LayerNorm`` are replaced, for that call only, by meta-device stand-ins, so
  that nothing is allocated while the decisions (filters, accelerate's divisible-by-16 rule) are the real ones;
- the recipe the Transformer Engine forward will run with: the handler that the installed accelerate's
  ``prepare_model`` (or, under DeepSpeed, ``_prepare_deepspeed``) passes to ``apply_fp8_autowrap``, read from their
  source, then given to the real ``apply_fp8_autowrap`` on a small meta module;
- compiled or eager: the accelerator's dynamo plugin, and under DeepSpeed whether ``_prepare_deepspeed`` compiles.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from fp8ref.config import Backend
from fp8ref.module_filter import ModuleFilter, is_lora_adapter
from fp8ref.verify import compiled as compiled_checks
from fp8ref.verify.layers import clean_fqn, fp8_layer_classes, is_fp8_layer
from fp8ref.verify.reasons import fp8_off_reason
from fp8ref.verify.recipe import TERecipe, backend_name, recipe_in_forward, recipe_of


class _MetaTELinear(nn.Module):
    """What ``te.Linear(in, out, bias=..., params_dtype=...)`` returns during the conversion: meta parameters."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs: Any) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device="meta"))
        self.bias = nn.Parameter(torch.empty(out_features, device="meta")) if bias else None


class _MetaTELayerNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-5, **kwargs: Any) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden_size, device="meta"))
        self.bias = nn.Parameter(torch.empty(hidden_size, device="meta"))


@dataclass(frozen=True)
class LayerDecision:
    fqn: str
    converted: bool
    reason: str
    lora_adapter: bool = False


@dataclass
class Decisions:
    """What the accelerator decides for this model."""

    fp8_enabled: bool
    backend: str | None
    recipe: str | None
    off_reason: str | None = None
    off_explanation: str | None = None
    layers: list[LayerDecision] = field(default_factory=list)
    #: ``prepare`` raises here: ``"ExceptionType: message"``.
    prepare_failure: str | None = None
    compiled: bool = False
    distributed_type: str = "NO"
    te_recipe: TERecipe | None = None
    te_recipe_handler_passed: str | None = None
    te_recipe_dropped: bool = False

    @property
    def converted(self) -> list[str]:
        return [layer.fqn for layer in self.layers if layer.converted]

    @property
    def will_convert(self) -> bool:
        """FP8 on, with layers converted and ``prepare`` not failing."""
        return self.fp8_enabled and bool(self.converted) and self.prepare_failure is None


def _distributed_type(accelerator: Any) -> str:
    return str(getattr(accelerator, "distributed_type", "NO")).rsplit(".", 1)[-1]


@functools.cache
def _autowrap_argument(method_name: str) -> ast.expr | None:
    """The second argument of the ``apply_fp8_autowrap(model, ...)`` call in ``Accelerator.<method_name>``."""
    from accelerate import Accelerator

    method = getattr(Accelerator, method_name, None)
    if method is None:
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "apply_fp8_autowrap" and len(node.args) > 1:
            return node.args[1]
    return None


def _evaluate(expression: ast.expr, accelerator: Any) -> tuple[Any, str]:
    """``self.a or self.b`` evaluated on ``accelerator``; and the attribute that gave the value."""
    if isinstance(expression, ast.Attribute) and getattr(expression.value, "id", None) == "self":
        return getattr(accelerator, expression.attr, None), expression.attr
    if isinstance(expression, ast.BoolOp) and isinstance(expression.op, ast.Or):
        last = ""
        for value in expression.values:
            found, last = _evaluate(value, accelerator)
            if found:
                return found, last
        return None, last
    raise ValueError(f"cannot read {ast.unparse(expression)}")


def compiles_under_deepspeed() -> bool:
    """Whether the installed accelerate's ``_prepare_deepspeed`` compiles the engine (read in its source)."""
    from accelerate import Accelerator

    try:
        return ".compile(" in inspect.getsource(Accelerator._prepare_deepspeed)
    except (OSError, TypeError, AttributeError):
        return False


@contextlib.contextmanager
def _te_layers_on_meta() -> Iterator[Any]:
    te: Any = importlib.import_module("transformer_engine.pytorch")
    saved = {name: vars(te).get(name) for name in ("Linear", "LayerNorm")}
    te.Linear, te.LayerNorm = _MetaTELinear, _MetaTELayerNorm
    try:
        yield te
    finally:
        for name, value in saved.items():
            setattr(te, name, value)


def _te_forward_recipe(accelerator: Any, decisions: Decisions) -> None:
    """The recipe ``apply_fp8_autowrap`` builds from the handler that ``prepare`` passes it here."""
    method = "_prepare_deepspeed" if decisions.distributed_type == "DEEPSPEED" else "prepare_model"
    expression = _autowrap_argument(method)
    if expression is None:
        return
    try:
        handler, attribute = _evaluate(expression, accelerator)
    except ValueError:
        return
    decisions.te_recipe_handler_passed = f"{method} passes self.{attribute}" + ("" if handler else " (None)")
    decisions.te_recipe_dropped = handler is None and getattr(accelerator, "te_recipe_handler", None) is not None
    from accelerate.utils import apply_fp8_autowrap

    with contextlib.suppress(ImportError):  # accelerate 1.11 reads te.fp8 as an attribute of transformer_engine
        importlib.import_module("transformer_engine.pytorch.fp8")
    probe = nn.Linear(16, 16, device="meta")
    try:
        with warnings.catch_warnings():  # to_kwargs builds a default FP8RecipeKwargs, which warns it is deprecated
            warnings.simplefilter("ignore", FutureWarning)
            wrapped = apply_fp8_autowrap(probe, handler)
    except (ImportError, ValueError, AttributeError, TypeError) as exc:
        decisions.prepare_failure = decisions.prepare_failure or f"apply_fp8_autowrap: {type(exc).__name__}: {exc}"
        return
    decisions.te_recipe = recipe_in_forward([wrapped])


def _skip_reason(module: nn.Module, fqn: str, filter_func: Any, converter: str) -> str:
    if isinstance(filter_func, ModuleFilter):
        decision = filter_func.explain(module, fqn)
        if not decision.convert:
            return decision.reason.value if decision.reason else decision.detail
        return f"accepted by the filter, not converted ({converter})"
    dims = (getattr(module, "in_features", 0), getattr(module, "out_features", 0))
    if any(dim % 16 for dim in dims):
        return f"kept by {converter}: {dims[0]}x{dims[1]} has a dimension not divisible by 16"
    return f"kept by {converter}"


def _filter_name(filter_func: Any) -> str:
    return getattr(filter_func, "__qualname__", type(filter_func).__name__)


def _convert(accelerator: Any, model: nn.Module, backend: str | None) -> tuple[Any, str]:
    """Run the conversion ``prepare`` runs for ``backend`` on ``model``; the filter it used, and its name."""
    if backend == "AO":
        filter_func = getattr(getattr(accelerator, "ao_recipe_handler", None), "module_filter_func", None)
        accelerator._prepare_ao(model)
        return filter_func, f"the torchao handler's module_filter_func ({_filter_name(filter_func)})"
    if backend == "TE":
        import accelerate.accelerator as accelerator_module

        converter = accelerator_module.convert_model
        filter_func = None
        if hasattr(converter, "__fp8ref_original__"):  # fp8ref's converter (fp8ref.te_convert)
            filter_func = inspect.getclosurevars(converter).nonlocals.get("module_filter")
        name = f"the converter {converter.__module__}.{_filter_name(converter)}"
        optimizer = torch.optim.SGD(list(model.parameters()), lr=0.0)
        with _te_layers_on_meta():
            accelerator._prepare_te(model, optimizer)
        return filter_func, name
    return None, "no conversion"


def read_decisions(accelerator: Any, training_args: Any, model: nn.Module) -> Decisions:
    """Everything the accelerator will decide at ``prepare``, with ``model`` (on the meta device) converted in place."""
    fp8_enabled = bool(getattr(accelerator, "fp8_enabled", False))
    dispatch = backend_name(accelerator)  # what prepare dispatches on, in FP8 or not (accelerate reads it so)
    backend = dispatch if fp8_enabled and dispatch != "NO" else None
    decisions = Decisions(fp8_enabled, backend, recipe_of(accelerator, Backend.from_accelerate_name(backend)))
    decisions.distributed_type = _distributed_type(accelerator)
    if not fp8_enabled:
        decisions.off_reason, decisions.off_explanation = fp8_off_reason(accelerator, training_args)
    before = {fqn: module for fqn, module in model.named_modules() if isinstance(module, nn.Linear)}
    filter_func, converter = None, "no conversion"
    try:
        filter_func, converter = _convert(accelerator, model, dispatch)
    except (ImportError, ValueError, RuntimeError, AttributeError, TypeError, KeyError) as exc:
        decisions.prepare_failure = f"{type(exc).__name__}: {exc}"
    after = dict(model.named_modules())
    fp8_classes = (*fp8_layer_classes(), _MetaTELinear)
    for fqn, module in before.items():
        now = after.get(fqn)
        converted = now is not None and (isinstance(now, fp8_classes) or is_fp8_layer(now))
        if converted:
            reason = "converted"
        elif backend is None:
            reason = "FP8 is off: nothing is converted"
        else:
            reason = _skip_reason(module, fqn, filter_func, converter)
        decisions.layers.append(LayerDecision(clean_fqn(fqn), converted, reason, is_lora_adapter(fqn)))
    if fp8_enabled and backend == "TE":
        _te_forward_recipe(accelerator, decisions)
    plugin_compiles = compiled_checks.compiles_at_prepare(accelerator)
    deepspeed = decisions.distributed_type == "DEEPSPEED"
    decisions.compiled = plugin_compiles and (not deepspeed or compiles_under_deepspeed())
    return decisions
