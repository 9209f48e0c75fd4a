"""Child of clause C16: the HF ``Trainer`` under DeepSpeed ZeRO on the CPU, in a process of its own.

Started by ``kit/deepspeed_run.py`` as ``python -m fp8ref_conformance.children.deepspeed_trainer``, either alone
(one rank: the test sets ``RANK=0``, ``WORLD_SIZE=1``, ``LOCAL_RANK=0``, ``MASTER_ADDR`` and ``MASTER_PORT=0``, so
that its store binds a port the system picks) or under ``torch.distributed.run`` (two ranks).
``DS_ACCELERATOR=cpu`` selects DeepSpeed's CPU accelerator. A process of its own because DeepSpeed keeps
process-wide state (its accelerator, ``deepspeed.comm``, the torch process group, ``HfDeepSpeedConfig``) that
nothing resets: it ends with the process.

Usage: ``python -m fp8ref_conformance.children.deepspeed_trainer --impl MODULE --out FILE --plan PLAN [--steps N]
[--standin-te DIR] [--cuda]``. ``PLAN`` is ``STAGE-FORM:RUN,RUN;...``: for each ZeRO stage the DeepSpeed config goes
to ``TrainingArguments(deepspeed=...)`` as a dict (``dict``) or as the path of a JSON file (``path``, as LLaMA-Factory
passes it), and the runs listed happen in order, each from a clean slate (:mod:`..kit.isolation`: ``os.environ``,
``sys.path``, the ``Accelerator`` class, accelerate's and transformers' namespaces and state put back as they were at
the start):

- ``reference``: the run without FP8 (``fp8`` false, no environment, no patch), ``--steps`` steps;
- ``fp8``: torchao, ``configure_fp8_environment(args)``, ``patch_accelerator_for_fp8()``, ``Trainer``, verify at the
  end of ``__init__``, ``train()`` (its records kept), verify again; ``--steps`` steps;
- ``no_eligible``: the same with a Llama none of whose layers is divisible by 16 (no FP8 layer can be in effect);
- ``te``: Transformer Engine (the stand-in from ``--standin-te`` on the CPU, the real one with ``--cuda``): the TE
  recipe in effect at every TE layer forward is recorded; ``--steps`` steps on CUDA, 2 on the CPU;
- ``all_gather``: the FP8 run with ``fp8_enable_fsdp_float8_all_gather=True``; records where an error was raised
  (configure, ``create_fp8_kwargs`` when the module has it, patch, ``Trainer()``, ``train()``), its class and
  message, and how many training steps had run by then.

A run that needs a contract function the module lacks (:data:`RUN_NEEDS`) is recorded as ``{"missing": [...]}``
without running; the tests report those as ``missing`` themselves. Rank 0 writes ``FILE`` (other ranks
``FILE.rank<R>``) as JSON, also when something fails (with ``"error"``).

A run that another clause's defect keeps from starting (the patch importing ``transformer_engine`` on the torchao
path: C13d) is recorded as ``{"blocked": {"clause", "reason"}}``, and its tests report that block.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..kit import trainer as kit
from ..kit.isolation import snapshot
from ..kit.models import tiny_llama
from ..kit.verdicts import Blocked, apply_patch
from . import exit_without_teardown, run_rank

#: The contract functions each run calls (``create_fp8_kwargs`` is called by ``all_gather`` where it exists).
RUN_NEEDS = {
    "reference": (),
    "fp8": ("configure_fp8_environment", "patch_accelerator_for_fp8"),
    "no_eligible": ("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status"),
    "te": ("configure_fp8_environment", "patch_accelerator_for_fp8"),
    "all_gather": ("configure_fp8_environment", "patch_accelerator_for_fp8"),
}
#: Steps of the runs that look at layers and recipes only.
SHORT_STEPS = 2
#: Hidden and intermediate sizes of a Llama with no layer divisible by 16 (its lm_head, 40x128, is a head).
NO_ELIGIBLE_SIZES = (40, 72)


def deepspeed_config(stage: int) -> dict[str, Any]:
    """A ZeRO config as LLaMA-Factory's examples write it, with the batch sizes left to the Trainer."""
    return {
        "zero_optimization": {"stage": stage},
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
    }


def config_as(stage: int, form: str, work: Path) -> Any:
    """The ZeRO config of ``stage`` as ``TrainingArguments(deepspeed=...)`` gets it: a dict, or a JSON file's path."""
    config = deepspeed_config(stage)
    if form == "dict":
        return config
    path = work / f"ds_zero{stage}.json"
    path.write_text(json.dumps(config))
    return str(path)


def parse_plan(plan: str) -> list[tuple[int, str, list[str]]]:
    """``"2-dict:fp8,te;3-path:fp8"`` -> ``[(2, "dict", ["fp8", "te"]), (3, "path", ["fp8"])]``."""
    groups = []
    for group in filter(None, plan.split(";")):
        key, _, runs = group.partition(":")
        stage, _, form = key.partition("-")
        if form not in ("dict", "path") or not runs:
            raise ValueError(f"bad plan group {group!r}: expected STAGE-dict:RUNS or STAGE-path:RUNS")
        groups.append((int(stage), form, runs.split(",")))
    return groups


def train_run(impl: Any, name: str, config: Any, work: Path, options: argparse.Namespace) -> dict[str, Any]:
    """One ``Trainer`` run (``reference``, ``fp8``, ``no_eligible`` or ``te``) under the ZeRO ``config``."""
    fp8 = name != "reference"
    backend = "te" if name == "te" else "torchao"
    steps = options.steps if name in ("reference", "fp8") or (name == "te" and options.cuda) else SHORT_STEPS
    args = kit.training_arguments(
        work / name, fp8=fp8, steps=steps, backend=backend, cuda=options.cuda, deepspeed=config
    )
    hidden, intermediate = NO_ELIGIBLE_SIZES
    model = tiny_llama(hidden=hidden, intermediate=intermediate) if name == "no_eligible" else tiny_llama()
    with contextlib.ExitStack() as stack:
        if name == "te" and options.standin_te is not None:
            from ..kit.standin_te import standin_te

            stack.enter_context(standin_te(options.standin_te))
        record = kit.run_trainer(
            impl if fp8 else None,
            args,
            model,
            verify_at_init=name in ("fp8", "no_eligible"),
            record_te_recipes=name == "te",
        )
    return {**record.to_dict(), "distributed_type": str(args.distributed_state.distributed_type)}


def all_gather_run(impl: Any, config: Any, work: Path) -> dict[str, Any]:
    """The FP8 run with ``fp8_enable_fsdp_float8_all_gather=True``: where does it fail, and how?"""
    from transformers import Trainer, TrainerCallback

    steps_done: list[int] = []

    class CountSteps(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            steps_done.append(state.global_step)

    args = kit.training_arguments(work / "all_gather", fp8=True, steps=2, all_gather=True, deepspeed=config)
    record = refusal(
        impl,
        args,
        lambda: Trainer(model=tiny_llama(), args=args, train_dataset=kit.FixedBatch(), callbacks=[CountSteps()]),
    )
    return {**record, "steps_before_error": len(steps_done)}


def refusal(impl: Any, args: Any, build_trainer: Callable[[], Any]) -> dict[str, Any]:
    """Each place C16c lets the error come from, in the order a training script reaches them: configure,
    ``create_fp8_kwargs`` with the run's own arguments (where the module has it), the patch, ``Trainer()`` (its
    ``Accelerator()``), ``train()`` (``prepare``, then the steps); where an exception came from, and what it said."""
    phase = "configure_fp8_environment"
    try:
        impl.configure_fp8_environment(args)
        if callable(getattr(impl, "create_fp8_kwargs", None)):
            phase = "create_fp8_kwargs"
            impl.create_fp8_kwargs(args)
        phase = "patch_accelerator_for_fp8"
        apply_patch(impl, args.fp8_backend)
        phase = "Trainer()"
        trainer = build_trainer()
        phase = "train()"
        trainer.train()
    except Exception as exc:  # the clause is about this error: recorded for the test to judge
        return {
            "raised": True,
            "phase": phase,
            "type": type(exc).__name__,
            "is_value_error": isinstance(exc, ValueError),
            "message": str(exc),
            "traceback": traceback.format_exc()[-3000:],
        }
    return {"raised": False, "phase": "finished"}


def one_run(impl: Any, name: str, config: Any, work: Path, options: argparse.Namespace) -> dict[str, Any]:
    if name not in RUN_NEEDS:
        raise ValueError(f"unknown run {name!r} (known: {', '.join(RUN_NEEDS)})")
    missing = [f for f in RUN_NEEDS[name] if not callable(getattr(impl, f, None))]
    if missing:
        return {"missing": missing}
    if name == "all_gather":
        return all_gather_run(impl, config, work)
    return train_run(impl, name, config, work, options)


def run(options: argparse.Namespace) -> dict[str, Any]:
    impl = importlib.import_module(options.impl)
    importlib.import_module("transformers.trainer")  # before the snapshot, so that it covers transformers too
    slate = snapshot()
    result: dict[str, Any] = {"impl": options.impl, "stages": {}}
    with tempfile.TemporaryDirectory(prefix="c16-") as tmp:
        for stage, form, names in parse_plan(options.plan):
            work = Path(tmp) / f"{stage}-{form}"
            work.mkdir()
            config = config_as(stage, form, work)
            runs: dict[str, Any] = {}
            for name in names:
                slate.restore()
                started = time.perf_counter()
                try:
                    runs[name] = one_run(impl, name, config, work, options)
                except Blocked as exc:  # another clause's defect kept the run from starting: the test says so
                    runs[name] = {"blocked": exc.to_dict()}
                except Exception as exc:  # recorded per run: each test judges the run it needs
                    runs[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
                runs[name]["seconds"] = round(time.perf_counter() - started, 2)
            result["stages"][f"{stage}-{form}"] = runs
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
    parser.add_argument("--plan", required=True, help="STAGE-FORM:RUN,RUN;... (see the module docstring)")
    parser.add_argument("--steps", type=int, default=kit.LOSS_STEPS, help="steps of the reference and fp8 runs")
    parser.add_argument("--standin-te", type=Path, default=None, help="folder of the stand-in transformer_engine")
    parser.add_argument("--cuda", action="store_true", help="train on CUDA in bf16 (DS_ACCELERATOR=cuda)")
    options = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    _skip_shm_op_build()
    rank = int(os.environ.get("RANK", "0"))
    payload: dict[str, Any] = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}
    out = options.out if rank == 0 else options.out.with_name(f"{options.out.name}.rank{rank}")
    return run_rank(lambda: run(options), payload, out)


if __name__ == "__main__":
    # Without the interpreter's teardown (DeepSpeed's and torch's C++ globals): the result is written.
    exit_without_teardown(main())
