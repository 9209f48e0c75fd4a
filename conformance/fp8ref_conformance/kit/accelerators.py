"""Accelerators built for the clauses, and C10's check of a conversion after ``accelerator.prepare``.

Only the five contract functions, accelerate, torch and torchao are used."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..implementation import Implementation
from .verdicts import block_unless


def fp8_accelerator(impl: Implementation, args: Any, **kwargs: Any) -> Any:
    """``Accelerator(mixed_precision=get_fp8_mixed_precision(a), kwargs_handlers=create_fp8_kwargs(a))``."""
    import accelerate

    return accelerate.Accelerator(
        mixed_precision=impl.get_fp8_mixed_precision(args), kwargs_handlers=impl.create_fp8_kwargs(args), **kwargs
    )


def reference_fp8_accelerator(
    all_gather: bool = False, *, emulate: bool = False, keep_float8: bool = False, **kwargs: Any
) -> Any:
    """An FP8 ``Accelerator`` built by the suite itself, without the implementation: torchao, rowwise (or
    tensorwise with the all-gather), the C9 filter; ``kwargs`` go to ``Accelerator`` (a dynamo plugin, C12e). For
    clauses that judge one function only (C12 judges ``verify_fp8_status``), so that they need no other function
    of the module.

    ``emulate`` gives the config ``emulate=True``; ``keep_float8`` makes the filter leave alone the layers that are
    ``Float8Linear`` already (a ``Float8Linear`` is an ``nn.Linear``: by default torchao converts it again, with
    this handler's config), so that layers the user converted before ``prepare`` stay as the user made them."""
    import accelerate
    from accelerate.utils import AORecipeKwargs
    from torchao.float8 import Float8LinearConfig
    from torchao.float8.float8_linear import Float8Linear

    from .contract import contract_accepts

    if all_gather:
        config = Float8LinearConfig(enable_fsdp_float8_all_gather=True)
    else:
        config = Float8LinearConfig.from_recipe_name("rowwise")
    if emulate:
        config = dataclasses.replace(config, emulate=True)

    def module_filter(module: nn.Module, fqn: str) -> bool:
        return contract_accepts(module, fqn) and not (keep_float8 and isinstance(module, Float8Linear))

    handler = AORecipeKwargs(config=config, module_filter_func=module_filter)
    return accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=[handler], **kwargs)


def reference_te_accelerator() -> Any:
    """An FP8 ``Accelerator`` with the Transformer Engine recipe of C7, built by the suite itself; the caller puts
    a ``transformer_engine`` on the path (the stand-in on the CPU). Its ``prepare(model, optimizer)`` converts
    with accelerate's own TE conversion: every ``nn.Linear`` with both dimensions divisible by 16, up to the first
    one that is not (see G3)."""
    import accelerate
    from accelerate.utils import TERecipeKwargs

    handler = TERecipeKwargs(fp8_format="HYBRID", amax_history_len=16, amax_compute_algo="max")
    return accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=[handler])


def te_layer_names(model: nn.Module) -> set[str]:
    """The modules of ``model`` that come from ``transformer_engine`` (real or stand-in)."""
    return {name for name, m in model.named_modules() if type(m).__module__.split(".", 1)[0] == "transformer_engine"}


def ao_handler_of(acc: Any) -> Any:
    handler = getattr(acc, "ao_recipe_handler", None)
    if handler is None:
        raise AssertionError(f"the Accelerator holds no torchao handler (fp8_backend={acc.fp8_backend})")
    return handler


def with_emulation(impl: Implementation, args: Any) -> list[Any]:
    """The implementation's torchao handler with ``emulate=True`` (``dataclasses.replace`` of its
    config; same filter), for shapes where the CPU float8 kernels would be too slow."""
    from accelerate.utils import AORecipeKwargs
    from torchao.float8 import Float8LinearConfig

    handlers = impl.create_fp8_kwargs(args)
    handler: Any = handlers[0] if isinstance(handlers, list) and len(handlers) == 1 else None
    block_unless(
        isinstance(getattr(handler, "config", None), Float8LinearConfig),
        "C5",
        f"create_fp8_kwargs gave {handlers!r}: no single torchao handler whose config could emulate",
    )
    config = dataclasses.replace(handler.config, emulate=True)
    return [AORecipeKwargs(config=config, module_filter_func=handler.module_filter_func)]


def float8_names(model: nn.Module) -> set[str]:
    from torchao.float8.float8_linear import Float8Linear

    return {name for name, m in model.named_modules() if isinstance(m, Float8Linear)}


@dataclass
class ConversionResult:
    accepted: set[str]
    converted: set[str]
    model: nn.Module
    handler: Any


def prepare_and_compare(
    impl: Implementation, args: Any, model: nn.Module, device: str | None = None
) -> ConversionResult:
    """C10: prepare ``model`` with the implementation's handlers; check types, configs and values.

    Raises AssertionError with the clause's wording when the conversion is not what C10 states.
    """
    from torchao.float8.float8_linear import Float8Linear

    acc = fp8_accelerator(impl, args)
    handler = ao_handler_of(acc)
    before = copy.deepcopy(model)
    accepted = {
        name for name, m in before.named_modules() if isinstance(m, nn.Linear) and handler.module_filter_func(m, name)
    }
    block_unless(
        accepted, "C9d", "the module filter accepts no nn.Linear of the test model, so no conversion can be judged"
    )
    types_before = {name: type(m) for name, m in before.named_modules()}
    values_before = {k: v.detach().clone() for k, v in before.state_dict().items()}

    prepared = acc.unwrap_model(acc.prepare(model))
    if device is not None:
        wrong = [n for n, p in prepared.named_parameters() if p.device.type != device]
        assert not wrong, f"parameters not on {device}: {wrong}"
    converted = float8_names(prepared)
    assert converted == accepted, (
        f"converted {sorted(converted)}, but the filter accepts {sorted(accepted)} "
        f"(missing {sorted(accepted - converted)}, extra {sorted(converted - accepted)})"
    )
    for name, module in prepared.named_modules():
        if name in converted:
            assert isinstance(module, Float8Linear)
            assert module.config == handler.config, f"{name} carries {module.config}, not the handler's config"
        else:
            assert type(module) is types_before.get(name), (
                f"{name!r} changed type from {types_before.get(name)} to {type(module)}"
            )
    values_after = prepared.state_dict()
    assert values_after.keys() == values_before.keys(), "the parameter names changed"
    for key, value in values_before.items():
        after = values_after[key].detach().to("cpu")
        assert torch.equal(torch.as_tensor(after).to(value.dtype), value.to("cpu")), f"{key} changed value"
    return ConversionResult(accepted, converted, prepared, handler)


def linear_types(model: nn.Module) -> dict[str, type]:
    """The type of every ``nn.Linear`` of ``model``, by FQN (taken before ``prepare``)."""
    return {name: type(m) for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def assert_te_conversion(before: dict[str, type], accepted: set[str], prepared: nn.Module, te_linear: type) -> None:
    """Both sides of a Transformer Engine conversion (G2, G3, C13a): every layer in ``accepted`` became a
    ``te_linear``, and every other ``nn.Linear`` of ``before`` kept its type (the filter rejected it)."""
    modules = dict(prepared.named_modules())
    not_te = sorted(name for name in accepted if not isinstance(modules.get(name), te_linear))
    changed = sorted(
        f"{name} ({type(modules.get(name)).__name__})"
        for name, kind in before.items()
        if name not in accepted and type(modules.get(name)) is not kind
    )
    assert not not_te and not changed, (
        f"accepted layers not converted to transformer_engine.pytorch.Linear: {not_te}; "
        f"layers the filter rejects, converted or replaced anyway: {changed}"
    )
