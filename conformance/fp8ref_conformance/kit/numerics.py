"""C11's numerics: SQNR, the fixed regression task, an FP8 model against the same model in bf16, and the
clause's thresholds (also G1's, on CUDA)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..implementation import Implementation
from .accelerators import float8_names
from .models import mlp_model
from .verdicts import block_unless

#: The clause whose config a recipe of C11 (and G1) is: rowwise without the all-gather flag (C5), tensorwise with
#: it (C6). The value: the flag, and the weights' scaling granularity (by name) that recipe has.
RECIPES: dict[str, tuple[str, bool, str]] = {
    "rowwise": ("C5", False, "AXISWISE"),
    "tensorwise": ("C6", True, "TENSORWISE"),
}


def require_recipe(impl: Implementation, recipe: str) -> Any:
    """The implementation's training arguments for ``recipe``, once its config is that recipe; else the caller's
    clause is blocked by the clause of the config (C5 for rowwise, C6 for tensorwise): numerics of a recipe the
    implementation does not build cannot be judged. An exception from ``create_fp8_kwargs`` propagates (a failure
    of the caller's clause, not a block)."""
    from types import SimpleNamespace

    clause, flag, granularity = RECIPES[recipe]
    args = SimpleNamespace(fp8=True, fp8_backend="torchao", fp8_enable_fsdp_float8_all_gather=flag)
    handlers = impl.create_fp8_kwargs(args)
    config = getattr(handlers[0], "config", None) if isinstance(handlers, list) and len(handlers) == 1 else None
    cast = getattr(config, "cast_config_weight", None)
    got = getattr(getattr(cast, "scaling_granularity", None), "name", None)
    block_unless(
        got == granularity,
        clause,
        f"cannot judge {recipe} numerics: create_fp8_kwargs(fp8_enable_fsdp_float8_all_gather={flag}) gave "
        f"{'weights scaled ' + got if got else repr(handlers)[:200]}, not the {recipe} recipe",
    )
    return args


def sqnr_db(reference: Any, output: Any) -> float:
    """Signal-to-quantization-noise ratio in dB: ``20 * log10(|ref| / |ref - out|)``.

    Computed in float64; ``inf`` when the tensors are equal, ``-inf`` when the reference is zero
    and the output is not, ``nan`` when either holds a non-finite value.
    """
    ref = torch.as_tensor(reference).detach().to(torch.float64).cpu()
    out = torch.as_tensor(output).detach().to(torch.float64).cpu()
    if ref.shape != out.shape:
        raise ValueError(f"shapes differ: {tuple(ref.shape)} vs {tuple(out.shape)}")
    if not (torch.isfinite(ref).all() and torch.isfinite(out).all()):
        return math.nan
    signal = torch.linalg.vector_norm(ref).item()
    noise = torch.linalg.vector_norm(ref - out).item()
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 20.0 * math.log10(signal / noise)


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
    impl: Implementation,
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
    impl: Implementation,
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
    block_unless(
        float8_names(acc.unwrap_model(model)), "C10", "prepare with the implementation's handlers converted no layer"
    )

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
