"""A tiny Llama training step through ``accelerate.Accelerator.prepare``: the path users run."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import fp8ref
from bench.harness import (
    CPU_TIMING,
    CPU_VARIANTS,
    GPU_TIMING,
    GPU_VARIANTS,
    Timing,
    Variant,
    accelerate_prepare,
    count_fp8_modules,
    fresh_accelerate_state,
    record,
    timed,
)
from bench.models import CPU_LLAMA, GPU_LLAMA, TinyLlamaConfig, shape_fields


def run_llama_step(benchmark: Any, cfg: TinyLlamaConfig, variant: Variant, timing: Timing) -> None:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with fresh_accelerate_state():
        model = LlamaForCausalLM(cfg.llama_config()).to(torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        accelerator, (model, optimizer) = accelerate_prepare(variant, model, optimizer)
        device = accelerator.device
        fp8_layers = count_fp8_modules(model)
        if variant.backend is not None:
            # the user-facing check: raises FP8NotActiveError when FP8 is not in effect
            fp8ref.verify_fp8_status(accelerator, variant.training_args(), strict=True)
            assert fp8_layers >= 7 * cfg.layers
        else:
            assert fp8_layers == 0
        ids = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq), device=device)
        losses: list[torch.Tensor] = []

        def step() -> None:
            loss = model(input_ids=ids, labels=ids).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        timed(benchmark, step, device, timing)
    record(
        benchmark,
        device,
        variant,
        bench="llama_step",
        compile=False,
        **shape_fields(cfg),
        emulate=False,
        fp8_layers=fp8_layers,
        path="accelerate.Accelerator.prepare",
    )
    assert losses and bool(torch.isfinite(torch.stack(losses)).all())


@pytest.mark.parametrize("variant", CPU_VARIANTS, ids=lambda v: v.name)
def test_llama_step_cpu(benchmark: Any, variant: Variant) -> None:
    """CPU smoke: a 2-layer Llama of hidden 64 through accelerate. Proves the harness only."""
    benchmark.group = f"llama_step {CPU_LLAMA.label}"
    run_llama_step(benchmark, CPU_LLAMA, variant, CPU_TIMING)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", GPU_VARIANTS, ids=lambda v: v.name)
def test_llama_step_gpu(benchmark: Any, variant: Variant) -> None:
    benchmark.group = f"llama_step {GPU_LLAMA.label}"
    run_llama_step(benchmark, GPU_LLAMA, variant, GPU_TIMING)
