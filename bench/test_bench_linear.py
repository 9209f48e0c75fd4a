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
    compile_modes,
    convert_for,
    fresh_accelerate_state,
    record,
    time_forward_backward,
)
from bench.models import CPU_SHAPES, LLAMA_SHAPES, SMALL_SHAPES, LinearModel, LinearShape, shape_fields


def run_linear(
    benchmark: Any, shape: LinearShape, variant: Variant, device: torch.device, compiled: bool, timing: Timing
) -> None:
    torch.manual_seed(0)
    with fresh_accelerate_state():
        model, info = convert_for(variant, LinearModel(shape.k, shape.n).to(device=device, dtype=torch.bfloat16))
        x = torch.randn(shape.m, shape.k, device=device, dtype=torch.bfloat16)
        grad = torch.randn(shape.m, shape.n, device=device, dtype=torch.bfloat16)
        time_forward_backward(benchmark, model, x, grad, compiled, timing)
    record(
        benchmark,
        device,
        variant,
        bench="linear",
        compile=compiled,
        **shape_fields(shape),
        **info,
    )


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
