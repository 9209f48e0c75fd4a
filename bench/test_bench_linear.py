"""A single linear layer, forward + backward: bf16 against each FP8 variant over a shape sweep."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.harness import (
    CPU_TIMING,
    CPU_VARIANTS,
    GPU_TIMING,
    GPU_VARIANTS,
    Timing,
    Variant,
    accelerate_prepare,
    compile_modes,
    convert_torchao,
    count_fp8_modules,
    fresh_accelerate_state,
    maybe_compile,
    record,
    timed,
)
from bench.models import CPU_SHAPES, LLAMA_SHAPES, SMALL_SHAPES, LinearModel, LinearShape


def run_linear(
    benchmark: Any, shape: LinearShape, variant: Variant, device: torch.device, compiled: bool, timing: Timing
) -> None:
    torch.manual_seed(0)
    model = LinearModel(shape.k, shape.n).to(device=device, dtype=torch.bfloat16)
    info: dict[str, Any] = {"emulate": False}
    with fresh_accelerate_state():
        if variant.backend == "torchao":
            info = convert_torchao(model, variant)
        elif variant.backend == "te":
            # accelerate's Transformer Engine path converts only a model prepared with its optimizer
            optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
            _, (model, _) = accelerate_prepare(variant, model, optimizer)
            info["fp8_layers"] = count_fp8_modules(model)
            if info["fp8_layers"] == 0:
                raise RuntimeError("accelerate.prepare converted no layer to Transformer Engine")
        params = list(model.parameters())
        runner = maybe_compile(model, compiled)
        x = torch.randn(shape.m, shape.k, device=device, dtype=torch.bfloat16, requires_grad=True)
        grad = torch.randn(shape.m, shape.n, device=device, dtype=torch.bfloat16)

        def step() -> None:
            for p in params:
                p.grad = None
            x.grad = None
            runner(x).backward(grad)

        timed(benchmark, step, device, timing)
    record(
        benchmark,
        device,
        bench="linear",
        variant=variant.name,
        backend=variant.backend,
        recipe=variant.recipe,
        shape=shape.id,
        shape_label=shape.label,
        m=shape.m,
        k=shape.k,
        n=shape.n,
        flops=shape.flops,
        compile=compiled,
        dtype="bfloat16",
        **info,
    )
    # the timed step really ran the backward pass and produced finite gradients
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in params)


@pytest.mark.parametrize("variant", CPU_VARIANTS, ids=lambda v: v.name)
@pytest.mark.parametrize("shape", CPU_SHAPES, ids=lambda s: s.id)
def test_linear_cpu(benchmark: Any, shape: LinearShape, variant: Variant) -> None:
    """CPU smoke: real float8 kernels (torch._scaled_mm on the CPU), tiny shapes. Proves the harness only."""
    benchmark.group = f"linear {shape.id}"
    run_linear(benchmark, shape, variant, torch.device("cpu"), compiled=False, timing=CPU_TIMING)


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", compile_modes(), ids=lambda c: "compiled" if c else "eager")
@pytest.mark.parametrize("variant", GPU_VARIANTS, ids=lambda v: v.name)
@pytest.mark.parametrize("shape", LLAMA_SHAPES + SMALL_SHAPES, ids=lambda s: s.id)
def test_linear_gpu(benchmark: Any, shape: LinearShape, variant: Variant, compiled: bool) -> None:
    benchmark.group = f"linear {shape.id}{' compiled' if compiled else ''}"
    run_linear(benchmark, shape, variant, torch.device("cuda"), compiled=compiled, timing=GPU_TIMING)
