"""Child of clause C15: FSDP2 with float8 all-gather, one process per rank, on the CPU with gloo.

Started by ``test_c15_distributed.py`` under ``torch.distributed.run -m fp8ref_conformance.children.fsdp_float8``
with two processes. Usage: ``--impl MODULE --out DIR [--steps N]``. Every rank writes ``DIR/rank<R>.json``,
also when it fails (then with ``"error"``), so that the test can report what went wrong.

The FP8 configuration comes only from the implementation under test: ``configure_fp8_environment(args)``
then ``create_fp8_kwargs(args)`` with ``fp8_enable_fsdp_float8_all_gather=True``. Its single handler's
``config`` and ``module_filter_func`` are applied with accelerate's own torchao conversion
(``accelerate.utils.convert_model_to_fp8_ao``, what ``Accelerator.prepare`` calls), then the model is
sharded with ``torch.distributed.fsdp.fully_shard``.

Why not accelerate's FSDP2 plugin: accelerate 1.15 enables FSDP only for GPU-like distributed types
(``AcceleratorState`` switches to ``DistributedType.FSDP`` for MULTI_GPU, MULTI_XPU, MULTI_NPU, ... but not
MULTI_CPU), so on the CPU an ``Accelerator(fsdp_plugin=...)`` silently runs as MULTI_CPU with DDP. The worker
records what accelerate did with the plugin (``accelerate_distributed_type``, ``accelerate_is_fsdp2``) and
uses accelerate's path whenever it does turn FSDP2 on.
"""

from __future__ import annotations

import argparse
import importlib
import os
import types
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from . import exit_without_teardown, run_rank

VOCAB = 64
HIDDEN = 64
FFN = 128
SEQ = 16
BATCH = 4


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(HIDDEN)
        self.up_proj = nn.Linear(HIDDEN, FFN, bias=False)
        self.down_proj = nn.Linear(FFN, HIDDEN, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.down_proj(torch.relu(self.up_proj(self.norm(x))))
        return out


class TinyLM(nn.Module):
    """An embedding, two residual MLP blocks of eligible projections, and an excluded ``lm_head``."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList([Block(), Block()])
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        logits: torch.Tensor = self.lm_head(x)
        return logits


def _weight_classes(model: nn.Module, float8_linear: type[nn.Linear]) -> dict[str, str]:
    """For each ``Float8Linear``: the class of its (local shard of its) weight."""
    out: dict[str, str] = {}
    for fqn, module in model.named_modules():
        if isinstance(module, float8_linear):
            weight: Any = module.weight
            local = weight.to_local() if hasattr(weight, "to_local") else weight
            out[fqn] = type(local).__name__
    return out


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, backward: Any) -> list[float]:
    generator = torch.Generator().manual_seed(1234)  # the same batch on every rank
    ids = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=generator)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    losses: list[float] = []
    for _ in range(steps):
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        if backward is not None:
            backward(loss)
        else:
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return losses


def _accelerate_fsdp2(impl: Any, args: Any) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import FullyShardedDataParallelPlugin

    return Accelerator(
        cpu=True,
        mixed_precision=impl.get_fp8_mixed_precision(args),
        kwargs_handlers=impl.create_fp8_kwargs(args),
        fsdp_plugin=FullyShardedDataParallelPlugin(fsdp_version=2),
    )


def run(impl_name: str, steps: int) -> dict[str, Any]:
    from accelerate.utils import convert_model_to_fp8_ao
    from torch.distributed.fsdp import fully_shard
    from torchao.float8 import precompute_float8_dynamic_scale_for_fsdp
    from torchao.float8.float8_linear import Float8Linear

    impl = importlib.import_module(impl_name)
    args = types.SimpleNamespace(fp8=True, fp8_backend="torchao", fp8_enable_fsdp_float8_all_gather=True)
    result: dict[str, Any] = {"impl": impl_name}

    impl.configure_fp8_environment(args)  # as a training script would, before any Accelerator exists
    handlers = impl.create_fp8_kwargs(args)
    result["handlers"] = [type(h).__name__ for h in handlers]
    if len(handlers) != 1 or getattr(handlers[0], "config", None) is None:
        raise RuntimeError(f"create_fp8_kwargs returned {handlers!r}: expected one torchao handler with a config")
    handler = handlers[0]
    result["config_enable_fsdp_float8_all_gather"] = bool(
        getattr(handler.config, "enable_fsdp_float8_all_gather", False)
    )

    accelerator = _accelerate_fsdp2(impl, args)
    result["accelerate_distributed_type"] = str(accelerator.distributed_type)
    result["accelerate_is_fsdp2"] = bool(accelerator.is_fsdp2)

    torch.manual_seed(0)  # the same initial model on every rank
    model = TinyLM()
    optimizer_factory = lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2)  # noqa: E731
    if accelerator.is_fsdp2:
        result["path"] = "accelerate"
        optimizer = optimizer_factory(model)
        model, optimizer = accelerator.prepare(model, optimizer)
    else:
        result["path"] = "fully_shard"
        convert_model_to_fp8_ao(model, config=handler.config, module_filter_func=handler.module_filter_func)
        for block in model.layers:
            fully_shard(block)
        fully_shard(model)
        optimizer = optimizer_factory(model)
        if handler.config.enable_fsdp_float8_all_gather:
            optimizer.register_step_post_hook(lambda *_: precompute_float8_dynamic_scale_for_fsdp(model))

    result["float8_linear"] = sorted(fqn for fqn, m in model.named_modules() if isinstance(m, Float8Linear))
    result["weight_classes"] = _weight_classes(model, Float8Linear)
    result["lm_head_class"] = type(model.lm_head).__name__

    result["losses"] = _train(model, optimizer, steps, accelerator.backward if accelerator.is_fsdp2 else None)

    # The same training without sharding, in this process: with the same batch on every rank, the
    # averaged FSDP gradients equal the unsharded ones, so the losses must follow the same path.
    torch.manual_seed(0)
    reference = TinyLM()
    convert_model_to_fp8_ao(reference, config=handler.config, module_filter_func=handler.module_filter_func)
    result["unsharded_losses"] = _train(reference, optimizer_factory(reference), steps, None)
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, result["losses"])
    result["all_losses"] = gathered
    return result


#: Where forked ranks meet (``file://PATH``); unset under ``torch.distributed.run``.
INIT_METHOD_VARIABLE = "CONFORMANCE_INIT_METHOD"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", required=True, help="module offering the five FP8 helper functions")
    parser.add_argument("--out", required=True, type=Path, help="folder for rank<R>.json")
    parser.add_argument("--steps", type=int, default=3)
    options = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(1)
    # Forked ranks (kit/forks.py) meet through a file the test names; under torch.distributed.run, through its store.
    init_method = os.environ.get(INIT_METHOD_VARIABLE)
    if init_method:
        dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size)
    else:
        dist.init_process_group("gloo")
    payload: dict[str, Any] = {"rank": rank, "world_size": world_size, "backend": dist.get_backend()}
    return run_rank(lambda: run(options.impl, options.steps), payload, options.out / f"rank{rank}.json")


if __name__ == "__main__":
    # Without the interpreter's teardown: with torch 2.13 on the CPU, about one run in six of this worker aborted
    # *after* destroy_process_group, in C++ static destruction ("terminate called without an active exception",
    # SIGABRT), also without accelerate; the results are written and the barrier passed.
    exit_without_teardown(main())
