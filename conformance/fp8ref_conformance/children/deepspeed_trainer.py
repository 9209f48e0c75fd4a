"""Child of clause C16: the HF ``Trainer`` under DeepSpeed ZeRO on the CPU, in a process of its own.

Started by ``test_c16_deepspeed.py`` as ``python -m fp8ref_conformance.children.deepspeed_trainer``, either alone
(one rank: the test sets ``RANK=0``,
``WORLD_SIZE=1``, ``LOCAL_RANK=0``, ``MASTER_ADDR``, a free ``MASTER_PORT``) or under
``torch.distributed.run`` (two ranks). ``DS_ACCELERATOR=cpu`` selects DeepSpeed's CPU accelerator.
A process of its own because DeepSpeed keeps process-wide state (its accelerator, ``deepspeed.comm``, the
torch process group, ``HfDeepSpeedConfig``) that nothing resets: it ends with the process.

Usage: ``python -m fp8ref_conformance.children.deepspeed_trainer --impl MODULE --out FILE [--stages 2,3]
[--runs all_gather,reference,fp8] [--steps N]``. For each stage, each run starts from a clean slate
(:mod:`..kit.isolation`: ``os.environ``, ``sys.path``, the ``Accelerator`` class, accelerate's namespaces and
state put back as they were at the start):

- ``reference``: the run without FP8 (``fp8`` false, no environment, no patch);
- ``fp8``: ``configure_fp8_environment(args)``, ``patch_accelerator_for_fp8()``, ``Trainer``, ``train()``,
  ``verify_fp8_status``; records losses, module classes and verify warnings;
- ``all_gather``: the FP8 run with ``fp8_enable_fsdp_float8_all_gather=True``; records where an error was
  raised (configure, patch, ``Trainer()``, ``train()``), its class and message, and how many training steps
  had run by then.

A run that another clause's defect keeps from starting (the patch importing ``transformer_engine`` on the torchao
path: C13d) is recorded as ``{"blocked": {"clause", "reason"}}``, and its tests report that block.

Rank 0 writes ``FILE`` (other ranks ``FILE.rank<R>``) as JSON, also when something fails (with ``"error"``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ..kit import trainer as kit
from ..kit.isolation import snapshot
from ..kit.models import tiny_llama
from ..kit.verdicts import Blocked, apply_patch


def deepspeed_config(stage: int) -> dict[str, Any]:
    """A ZeRO config as LLaMA-Factory's examples write it, with the batch sizes left to the Trainer."""
    return {
        "zero_optimization": {"stage": stage},
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
    }


def train_run(impl: Any, stage: int, steps: int, work: Path, *, fp8: bool, backend: str, cuda: bool) -> dict[str, Any]:
    """One ``Trainer`` run under ZeRO ``stage``: with FP8 (the implementation's environment and patch) or
    the same run without FP8."""
    label = "fp8" if fp8 else "reference"
    config = deepspeed_config(stage)
    args = kit.make_args(work / f"{label}{stage}", fp8=fp8, steps=steps, backend=backend, cuda=cuda, deepspeed=config)
    record = kit.run_trainer(impl if fp8 else None, args, tiny_llama())
    return {**record.to_dict(), "distributed_type": str(args.distributed_state.distributed_type)}


def all_gather_run(impl: Any, stage: int, work: Path) -> dict[str, Any]:
    """The FP8 run with ``fp8_enable_fsdp_float8_all_gather=True``: where does it fail, and how?"""
    from transformers import Trainer, TrainerCallback

    steps_done: list[int] = []

    class CountSteps(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            steps_done.append(state.global_step)

    config = deepspeed_config(stage)
    args = kit.make_args(work / f"all_gather{stage}", fp8=True, steps=2, all_gather=True, deepspeed=config)
    phase = "configure_fp8_environment"
    try:
        impl.configure_fp8_environment(args)
        phase = "patch_accelerator_for_fp8"
        apply_patch(impl, args.fp8_backend)
        phase = "Trainer()"
        trainer = Trainer(model=tiny_llama(), args=args, train_dataset=kit.FixedBatch(), callbacks=[CountSteps()])
        phase = "train()"
        trainer.train()
    except Exception as exc:  # the clause is about this error: recorded for the test to judge
        return {
            "raised": True,
            "phase": phase,
            "type": type(exc).__name__,
            "is_value_error": isinstance(exc, ValueError),
            "message": str(exc),
            "steps_before_error": len(steps_done),
            "traceback": traceback.format_exc()[-3000:],
        }
    return {"raised": False, "phase": "finished", "steps_before_error": len(steps_done)}


def run(options: argparse.Namespace) -> dict[str, Any]:
    impl = importlib.import_module(options.impl)
    slate = snapshot()
    result: dict[str, Any] = {"impl": options.impl, "stages": {}}
    with tempfile.TemporaryDirectory(prefix="c16-") as tmp:
        for stage in (int(s) for s in options.stages.split(",")):
            runs: dict[str, Any] = {}
            for name in options.runs.split(","):
                slate.restore()
                started = time.perf_counter()
                try:
                    if name == "all_gather":
                        runs[name] = all_gather_run(impl, stage, Path(tmp))
                    else:
                        fp8 = name == "fp8"
                        runs[name] = train_run(
                            impl, stage, options.steps, Path(tmp), fp8=fp8, backend=options.backend, cuda=options.cuda
                        )
                except Blocked as exc:  # another clause's defect kept the run from starting: the test says so
                    runs[name] = {"blocked": exc.to_dict()}
                except Exception as exc:  # recorded per run: each test judges the run it needs
                    runs[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
                runs[name]["seconds"] = round(time.perf_counter() - started, 2)
            result["stages"][str(stage)] = runs
    slate.restore()
    return result


def _skip_shm_op_build() -> None:
    """Let DeepSpeed's CPU collectives use plain ``torch.distributed`` (gloo) instead of JIT-building its
    shared-memory op (``deepspeed_shm_comm_op``) with the system compiler: that build took 20 s to over a
    minute per fresh machine here, and it only speeds up collectives, which are not what C16 checks.
    ``CONFORMANCE_DEEPSPEED_SHM_OP=1`` keeps DeepSpeed's default (build and use the op)."""
    if os.environ.get("CONFORMANCE_DEEPSPEED_SHM_OP") == "1":
        return
    # Not ``import deepspeed.comm.torch as ...``: the package ``deepspeed.comm`` has an attribute ``torch`` (the
    # torch module itself), which that statement would return.
    ds_torch = importlib.import_module("deepspeed.comm.torch")
    if hasattr(ds_torch, "build_shm_op"):
        setattr(ds_torch, "build_shm_op", lambda: None)  # noqa: B010 - an untyped module attribute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--impl", required=True, help="module offering the five FP8 helper functions")
    parser.add_argument("--out", required=True, type=Path, help="JSON file for the result (rank 0)")
    parser.add_argument("--stages", default="2,3", help="comma-separated ZeRO stages")
    parser.add_argument(
        "--runs", default="all_gather,reference,fp8", help="comma-separated runs per stage, each from a clean slate"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--backend", default="torchao", help="fp8_backend of the FP8 runs")
    parser.add_argument("--cuda", action="store_true", help="train on CUDA in bf16 (DS_ACCELERATOR=cuda)")
    options = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    _skip_shm_op_build()
    rank = int(os.environ.get("RANK", "0"))
    payload: dict[str, Any] = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}
    status = 0
    try:
        payload.update(run(options))
    except Exception as exc:  # reported to the test through the JSON file
        payload["error"] = f"{type(exc).__name__}: {exc}"
        payload["traceback"] = traceback.format_exc()[-6000:]
        status = 1
    out = options.out if rank == 0 else options.out.with_name(f"{options.out.name}.rank{rank}")
    out.write_text(json.dumps(payload, indent=2))
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if status == 0:
            dist.barrier()
        dist.destroy_process_group()
    return status


if __name__ == "__main__":
    code = main()
    # Leave without the interpreter's teardown (DeepSpeed's and torch's C++ globals): the result is written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
