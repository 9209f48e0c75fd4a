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
    accelerate_prepare,
    compile_modes,
    convert_torchao,
    count_fp8_modules,
    fresh_accelerate_state,
    maybe_compile,
    record,
    timed,
)
from bench.models import CPU_BLOCK, GPU_BLOCKS, BlockConfig, DecoderBlock

PROJECTIONS = 7


def run_block(
    benchmark: Any, cfg: BlockConfig, variant: Variant, device: torch.device, compiled: bool, timing: Timing
) -> None:
    torch.manual_seed(0)
    block = DecoderBlock(cfg).to(device=device, dtype=torch.bfloat16)
    info: dict[str, Any] = {"emulate": False}
    with fresh_accelerate_state():
        if variant.backend == "torchao":
            info = convert_torchao(block, variant)
        elif variant.backend == "te":
            # accelerate's Transformer Engine path converts only a model prepared with its optimizer
            optimizer = torch.optim.SGD(block.parameters(), lr=0.0)
            _, (block, _) = accelerate_prepare(variant, block, optimizer)
            info["fp8_layers"] = count_fp8_modules(block)
        if variant.backend is not None and info["fp8_layers"] < PROJECTIONS:
            raise RuntimeError(f"{variant.name}: only {info['fp8_layers']} of the {PROJECTIONS} projections are FP8")
        params = list(block.parameters())
        runner = maybe_compile(block, compiled)
        x = torch.randn(cfg.batch, cfg.seq, cfg.hidden, device=device, dtype=torch.bfloat16, requires_grad=True)
        grad = torch.randn_like(x)

        def step() -> None:
            for p in params:
                p.grad = None
            x.grad = None
            runner(x).backward(grad)

        timed(benchmark, step, device, timing)
    record(
        benchmark,
        device,
        bench="block",
        variant=variant.name,
        backend=variant.backend,
        recipe=variant.recipe,
        shape=f"{cfg.label}-b{cfg.batch}s{cfg.seq}",
        shape_label=cfg.label,
        m=cfg.tokens,
        hidden=cfg.hidden,
        intermediate=cfg.intermediate,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_kv_heads,
        batch=cfg.batch,
        seq=cfg.seq,
        flops=cfg.flops,
        compile=compiled,
        dtype="bfloat16",
        **info,
    )
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in params)


@pytest.mark.parametrize("variant", CPU_VARIANTS, ids=lambda v: v.name)
def test_block_cpu(benchmark: Any, variant: Variant) -> None:
    """CPU smoke: a block of hidden 64 on 64 tokens, real float8 kernels. Proves the harness only."""
    benchmark.group = f"block {CPU_BLOCK.label}"
    run_block(benchmark, CPU_BLOCK, variant, torch.device("cpu"), compiled=False, timing=CPU_TIMING)


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", compile_modes(), ids=lambda c: "compiled" if c else "eager")
@pytest.mark.parametrize("variant", GPU_VARIANTS, ids=lambda v: v.name)
@pytest.mark.parametrize("cfg", GPU_BLOCKS, ids=lambda c: f"{c.label}-b{c.batch}s{c.seq}")
def test_block_gpu(benchmark: Any, cfg: BlockConfig, variant: Variant, compiled: bool) -> None:
    benchmark.group = f"block {cfg.label}-b{cfg.batch}s{cfg.seq}{' compiled' if compiled else ''}"
    run_block(benchmark, cfg, variant, torch.device("cuda"), compiled=compiled, timing=GPU_TIMING)
