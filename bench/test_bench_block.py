"""A Llama-style decoder block (attention + SwiGLU MLP), forward + backward, bf16 against each FP8 variant."""

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
from bench.models import CPU_BLOCK, GPU_BLOCKS, BlockConfig, DecoderBlock, shape_fields

PROJECTIONS = 7


def run_block(
    benchmark: Any, cfg: BlockConfig, variant: Variant, device: torch.device, compiled: bool, timing: Timing
) -> None:
    torch.manual_seed(0)
    with fresh_accelerate_state():
        block, info = convert_for(variant, DecoderBlock(cfg).to(device=device, dtype=torch.bfloat16))
        if variant.backend is not None and info["fp8_layers"] < PROJECTIONS:
            raise RuntimeError(f"{variant.name}: only {info['fp8_layers']} of the {PROJECTIONS} projections are FP8")
        x = torch.randn(cfg.batch, cfg.seq, cfg.hidden, device=device, dtype=torch.bfloat16)
        time_forward_backward(benchmark, block, x, torch.randn_like(x), compiled, timing)
    record(
        benchmark,
        device,
        variant,
        bench="block",
        compile=compiled,
        **shape_fields(cfg),
        **info,
    )


@pytest.mark.parametrize("variant", CPU_VARIANTS, ids=lambda v: v.name)
def test_block_cpu(benchmark: Any, variant: Variant) -> None:
    """CPU smoke: a block of hidden 64 on 64 tokens, real float8 kernels. Proves the harness only."""
    benchmark.group = f"block {CPU_BLOCK.label}"
    run_block(benchmark, CPU_BLOCK, variant, torch.device("cpu"), compiled=False, timing=CPU_TIMING)


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", compile_modes(), ids=lambda c: "compiled" if c else "eager")
@pytest.mark.parametrize("variant", GPU_VARIANTS, ids=lambda v: v.name)
@pytest.mark.parametrize("cfg", GPU_BLOCKS, ids=lambda c: c.id)
def test_block_gpu(benchmark: Any, cfg: BlockConfig, variant: Variant, compiled: bool) -> None:
    benchmark.group = f"block {cfg.id}{' compiled' if compiled else ''}"
    run_block(benchmark, cfg, variant, torch.device("cuda"), compiled=compiled, timing=GPU_TIMING)
