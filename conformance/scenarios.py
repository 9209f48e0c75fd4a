"""Models and end-to-end checks after ``accelerator.prepare`` (C10, C11, C12), shared by the CPU
tests and their GPU counterparts (G1, G4). Only the five contract functions, accelerate, torch and
torchao are used."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import types
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .helpers import sqnr_db

# --------------------------------------------------------------------------- models


class _Output(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(64, 64)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.output = _Output()


class _Block(nn.Module):
    """BERT-like nesting: ``attention.output.dense`` is an ordinary (and large) layer."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = _Attention()


class SubLinear(nn.Linear):
    """A user subclass of nn.Linear."""


class LinearLike(nn.Module):
    """Not an nn.Linear: a 2-D weight and in/out features only."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / 8)


def mixed_model(seed: int = 0) -> nn.Module:
    """A Sequential mixing eligible, odd-sized, head and look-alike layers (C10; not run forward)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            fc_in=nn.Linear(64, 64),
            act=nn.GELU(),
            odd=nn.Linear(64, 40),
            norm=nn.LayerNorm(40),
            back=nn.Linear(40, 64),
            encoder=nn.ModuleDict({"layer": nn.ModuleList([_Block()])}),
            output_proj=nn.Linear(64, 64),
            sub=SubLinear(64, 32),
            like=LinearLike(32, 32),
            output=nn.Linear(64, 64),
            lm_head=nn.Linear(64, 32),
        )
    )


#: What C9 accepts in :func:`mixed_model`.
MIXED_MODEL_ELIGIBLE = frozenset({"fc_in", "encoder.layer.0.attention.output.dense", "output_proj", "sub"})


def odd_early_layer_model(seed: int = 0) -> nn.Module:
    """An early ``nn.Linear`` with a dimension not divisible by 16, then eligible layers: accelerate's own
    Transformer Engine conversion stops at ``early`` and leaves every later layer unconverted (G3)."""
    from collections import OrderedDict

    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            early=nn.Linear(64, 40),
            back=nn.Linear(40, 64),
            block=nn.Sequential(OrderedDict(fc1=nn.Linear(64, 128), fc2=nn.Linear(128, 64))),
            later=nn.Linear(64, 64),
        )
    )


#: The layers of :func:`odd_early_layer_model` that the contract's filter accepts.
ODD_EARLY_LAYER_ELIGIBLE = ("block.fc1", "block.fc2", "later")


def ineligible_model(seed: int = 0) -> nn.Module:
    """Only layers that C9 rejects: odd sizes and a head (C12a: FP8 cannot be in effect)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(odd=nn.Linear(64, 40), act=nn.ReLU(), back=nn.Linear(40, 24), lm_head=nn.Linear(24, 64))
    )


def mlp_model(
    widths: tuple[int, ...] = (64, 128, 64), *, seed: int = 0, dtype: torch.dtype = torch.bfloat16
) -> nn.Module:
    """A small MLP whose layers are all eligible (C11 numerics)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers).to(dtype)


def tiny_llama_config() -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )


def tiny_llama(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A tiny ``LlamaForCausalLM`` from a ``LlamaConfig`` (no download)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model: nn.Module = LlamaForCausalLM(tiny_llama_config())
    return model.to(dtype)


LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# --------------------------------------------------------------------------- accelerate


def fp8_accelerator(impl: types.ModuleType, args: Any, **kwargs: Any) -> Any:
    """``Accelerator(mixed_precision=get_fp8_mixed_precision(a), kwargs_handlers=create_fp8_kwargs(a))``."""
    import accelerate

    return accelerate.Accelerator(
        mixed_precision=impl.get_fp8_mixed_precision(args), kwargs_handlers=impl.create_fp8_kwargs(args), **kwargs
    )


def reference_fp8_accelerator(all_gather: bool = False) -> Any:
    """An FP8 ``Accelerator`` built by the suite itself, without the implementation: torchao, rowwise (or
    tensorwise with the all-gather), the C9 filter. For clauses that judge one function only (C12 judges
    ``verify_fp8_status``), so that they need no other function of the module."""
    import accelerate
    from accelerate.utils import AORecipeKwargs
    from torchao.float8 import Float8LinearConfig

    from .helpers import contract_accepts

    if all_gather:
        config = Float8LinearConfig(enable_fsdp_float8_all_gather=True)
    else:
        config = Float8LinearConfig.from_recipe_name("rowwise")
    handler = AORecipeKwargs(config=config, module_filter_func=contract_accepts)
    return accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=[handler])


def ao_handler_of(acc: Any) -> Any:
    handler = getattr(acc, "ao_recipe_handler", None)
    if handler is None:
        raise AssertionError(f"the Accelerator holds no torchao handler (fp8_backend={acc.fp8_backend})")
    return handler


def with_emulation(impl: types.ModuleType, args: Any) -> list[Any]:
    """The implementation's torchao handler with ``emulate=True`` (``dataclasses.replace`` of its
    config; same filter), for shapes where the CPU float8 kernels would be too slow."""
    from accelerate.utils import AORecipeKwargs

    (handler,) = impl.create_fp8_kwargs(args)
    config = dataclasses.replace(handler.config, emulate=True)
    return [AORecipeKwargs(config=config, module_filter_func=handler.module_filter_func)]


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


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
    impl: types.ModuleType, args: Any, model: nn.Module, device: str | None = None
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
    assert accepted, "precondition: the filter accepts no layer of the test model (see C9)"
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


# --------------------------------------------------------------------------- numerics (C11)

FORWARD_SQNR_DB = 20.0
GRAD_SQNR_DB = 15.0
STEPS = 20
FINAL_LOSS_TOLERANCE = 0.10


@dataclass
class NumericsResult:
    forward_sqnr: float
    grad_sqnr: dict[str, float]
    fp8_losses: list[float]
    ref_losses: list[float]


def regression_task(
    device: str, dtype: torch.dtype = torch.bfloat16, batch: int = 64, width: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed small regression task: ``y = tanh(x @ W)`` with a seeded teacher ``W``."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(batch, width, generator=gen)
    teacher = torch.randn(width, width, generator=gen) / math.sqrt(width)
    y = torch.tanh(x @ teacher)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=torch.float32)


def run_numerics(
    impl: types.ModuleType,
    args: Any,
    *,
    widths: tuple[int, ...] = (64, 128, 64),
    device: str = "cpu",
    handlers: list[Any] | None = None,
    steps: int = STEPS,
    lr: float = 3e-3,
) -> NumericsResult:
    """C11: an FP8 model prepared with the implementation's handlers against the same model in bf16.

    A run with the implementation's own handlers is computed once per session and shared (C11's CPU
    test and G1's CPU twin check the same run).
    """
    key = (impl.__name__, tuple(sorted(vars(args).items())), widths, device, steps, lr)
    if handlers is None and key in _NUMERICS_RUNS:
        return _NUMERICS_RUNS[key]
    result = _run_numerics(impl, args, widths=widths, device=device, handlers=handlers, steps=steps, lr=lr)
    if handlers is None:
        _NUMERICS_RUNS[key] = result
    return result


_NUMERICS_RUNS: dict[tuple[Any, ...], NumericsResult] = {}


def _run_numerics(
    impl: types.ModuleType,
    args: Any,
    *,
    widths: tuple[int, ...],
    device: str,
    handlers: list[Any] | None,
    steps: int,
    lr: float,
) -> NumericsResult:
    import accelerate

    x, y = regression_task(device, batch=64, width=widths[0])
    if widths[-1] != widths[0]:
        raise ValueError("the regression task needs the same input and output width")
    reference = mlp_model(widths).to(device)
    model = copy.deepcopy(reference)
    acc = accelerate.Accelerator(
        mixed_precision=impl.get_fp8_mixed_precision(args),
        kwargs_handlers=handlers if handlers is not None else impl.create_fp8_kwargs(args),
    )
    # The optimizer is built after the model is prepared: torchao's tensorwise all-gather recipe wraps
    # the weights in new Parameters, which an optimizer built before would never see.
    model = acc.prepare(model)
    assert float8_names(acc.unwrap_model(model)), "precondition: no layer was converted (see C10)"

    out = model(x)
    ref_out = reference(x)
    forward = sqnr_db(ref_out.float(), out.float())

    loss = nn.functional.mse_loss(out.float(), y)
    acc.backward(loss)
    nn.functional.mse_loss(ref_out.float(), y).backward()
    ref_params = dict(reference.named_parameters())
    grads: dict[str, float] = {}
    for name, param in acc.unwrap_model(model).named_parameters():
        assert param.grad is not None, f"{name} has no gradient"
        grad = param.grad.float()
        assert torch.isfinite(grad).all(), f"the gradient of {name} is not finite"
        grads[name] = sqnr_db(ref_params[name].grad.float(), grad)  # type: ignore[union-attr]
    model.zero_grad(set_to_none=True)
    reference.zero_grad(set_to_none=True)

    optimizer = acc.prepare(torch.optim.AdamW(model.parameters(), lr=lr))
    ref_optimizer = torch.optim.AdamW(reference.parameters(), lr=lr)
    fp8_losses: list[float] = []
    ref_losses: list[float] = []
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x).float(), y)
        acc.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        fp8_losses.append(loss.item())
        ref_loss = nn.functional.mse_loss(reference(x).float(), y)
        ref_loss.backward()
        ref_optimizer.step()
        ref_optimizer.zero_grad(set_to_none=True)
        ref_losses.append(ref_loss.item())
    return NumericsResult(forward, grads, fp8_losses, ref_losses)


def assert_numerics(result: NumericsResult) -> None:
    assert result.forward_sqnr >= FORWARD_SQNR_DB, f"forward SQNR {result.forward_sqnr:.1f} dB < {FORWARD_SQNR_DB} dB"
    low = {k: round(v, 1) for k, v in result.grad_sqnr.items() if not v >= GRAD_SQNR_DB}
    assert not low, f"gradient SQNR below {GRAD_SQNR_DB} dB: {low}"
    losses = result.fp8_losses
    assert all(math.isfinite(v) for v in losses), f"non-finite FP8 loss: {losses}"
    assert losses[-1] < losses[0], f"the FP8 loss did not decrease: {losses[0]:.4f} -> {losses[-1]:.4f}"
    final, ref_final = losses[-1], result.ref_losses[-1]
    assert abs(final - ref_final) <= FINAL_LOSS_TOLERANCE * ref_final, (
        f"final FP8 loss {final:.4f} is not within {FINAL_LOSS_TOLERANCE:.0%} of the bf16 loss {ref_final:.4f}"
    )
