"""C14 Trainer end to end: FP8 must survive the Hugging Face ``Trainer``, which builds its own ``Accelerator``.

The order is the one real training scripts follow (and LLaMA-Factory's trainers): the training arguments
(a ``transformers.TrainingArguments`` that also carries the three FP8 attributes of the contract) exist
first, then ``configure_fp8_environment(args)`` and ``patch_accelerator_for_fp8()``, then the ``Trainer`` is
built and ``train()`` runs three steps. The ``Trainer`` passes ``mixed_precision=args.mixed_precision``
(computed when the arguments were built) and a ``DistributedDataParallelKwargs`` handler to its
``Accelerator``: an implementation whose environment or patch does not survive that leaves every layer in
high precision, which is what this clause exists to catch.

Only the five contract functions, accelerate, torch, torchao and transformers are used. The model is a tiny
``LlamaForCausalLM`` built from a ``LlamaConfig`` (no download) whose projections (64x64, 64x128, 128x64)
are divisible by 16 and small enough for torchao's real float8 kernels on the CPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from .kit.capabilities import cuda_fp8_skip_reason
from .kit.env import env_snapshot, fp8_env_prefixes
from .kit.logs import capture_logs
from .kit.models import tiny_llama
from .kit.trainer import NUM_LAYERS, PROJECTIONS, FixedBatch, make_args
from .kit.verdicts import apply_patch

MAX_STEPS = 3


@dataclasses.dataclass
class TrainerRun:
    trainer: Any
    args: Any
    losses: list[float]
    train_loss: float
    verify_warnings: str
    verify_warning_count: int


def run_trainer(impl: types.ModuleType, output_dir: Path, *, backend: str, cuda: bool) -> TrainerRun:
    """Arguments, then the implementation's environment and patch, then ``Trainer(...).train()``, then
    ``verify_fp8_status`` (its log records captured)."""
    from transformers import Trainer

    args = make_args(output_dir, fp8=True, steps=MAX_STEPS, backend=backend, cuda=cuda, learning_rate=1e-3)
    impl.configure_fp8_environment(args)
    apply_patch(impl, backend)  # on the torchao path a TE import there is C13d's defect: C14 is blocked
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=FixedBatch(count=16))
    output = trainer.train()
    losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    with capture_logs() as logs:
        impl.verify_fp8_status(trainer.accelerator, args)
    return TrainerRun(
        trainer=trainer,
        args=args,
        losses=losses,
        train_loss=float(output.training_loss),
        verify_warnings=logs.describe(logging.WARNING),
        verify_warning_count=len(logs.at_least(logging.WARNING)),
    )


def projection_types(model: torch.nn.Module) -> dict[str, type]:
    return {fqn: type(module) for fqn, module in model.named_modules() if fqn.rsplit(".", 1)[-1] in PROJECTIONS}


def lm_head_of(model: torch.nn.Module) -> torch.nn.Module:
    heads = [module for fqn, module in model.named_modules() if fqn.rsplit(".", 1)[-1] == "lm_head"]
    assert len(heads) == 1, f"expected one lm_head in the trained model, found {len(heads)}"
    head: torch.nn.Module = heads[0]
    return head


def check_run(run: TrainerRun, fp8_layer: type, what: str) -> None:
    """The assertions of C14, with ``fp8_layer`` the class every projection must have become."""
    model = run.trainer.model
    types_ = projection_types(model)
    assert len(types_) == len(PROJECTIONS) * NUM_LAYERS, f"found projections {sorted(types_)}"
    not_converted = {fqn: cls.__name__ for fqn, cls in types_.items() if not issubclass(cls, fp8_layer)}
    assert not not_converted, (
        f"after Trainer.train() these projections are not {what} (FP8 silently off under the Trainer; the "
        f"Trainer's Accelerator had fp8_enabled={getattr(run.trainer.accelerator, 'fp8_enabled', None)}, "
        f"args.mixed_precision={getattr(run.args, 'mixed_precision', None)!r}): {not_converted}"
    )
    head = lm_head_of(model)
    assert not isinstance(head, fp8_layer), f"lm_head was converted to {type(head).__name__}"
    assert len(run.losses) == MAX_STEPS, f"expected a logged loss for each of {MAX_STEPS} steps: {run.losses}"
    assert all(math.isfinite(loss) for loss in run.losses), f"non-finite loss: {run.losses}"
    assert math.isfinite(run.train_loss), f"non-finite training loss {run.train_loss}"
    assert run.verify_warning_count == 0, (
        f"verify_fp8_status logged at WARNING or above although FP8 is in effect: {run.verify_warnings}"
    )


@pytest.fixture
def clean_fp8_env() -> Any:
    """No ``ACCELERATE_*``/``FP8_*`` variable from the caller's shell leaks into the run."""
    with env_snapshot(drop_prefixes=fp8_env_prefixes()) as env:
        yield env


# --------------------------------------------------------------------------- CPU


@pytest.mark.parametrize("backend", ["torchao", "auto"])
def test_c14_trainer_converts_projections_cpu(
    impl: types.ModuleType, tmp_path: Path, clean_fp8_env: Any, backend: str
) -> None:
    """C14 on the CPU with torchao, named and resolved from ``auto`` (torchao comes first when installed)."""
    from torchao.float8.float8_linear import Float8Linear

    run = run_trainer(impl, tmp_path, backend=backend, cuda=False)
    check_run(run, Float8Linear, "torchao Float8Linear")


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_c14_cuda_torchao_trainer(impl: types.ModuleType, tmp_path: Path, clean_fp8_env: Any) -> None:
    """C14 on CUDA with torchao's real float8 kernels, the Trainer in bf16."""
    reason = cuda_fp8_skip_reason()
    if reason:
        pytest.skip(reason)
    if importlib.util.find_spec("torchao") is None:
        pytest.skip("torchao is not installed (pip install torchao)")
    from torchao.float8.float8_linear import Float8Linear

    run = run_trainer(impl, tmp_path, backend="torchao", cuda=True)
    check_run(run, Float8Linear, "torchao Float8Linear")
    on_cpu = [name for name, p in run.trainer.model.named_parameters() if p.device.type != "cuda"]
    assert not on_cpu, f"parameters left off the GPU: {on_cpu}"


@pytest.mark.gpu
def test_c14_cuda_te_trainer(impl: types.ModuleType, tmp_path: Path, clean_fp8_env: Any) -> None:
    """C14 on CUDA with Transformer Engine: projections become ``transformer_engine.pytorch.Linear``."""
    reason = cuda_fp8_skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        import transformer_engine.pytorch as te
    except ImportError as exc:
        pytest.skip(f"transformer_engine.pytorch is not importable ({exc}): pip install transformer-engine[pytorch]")
    if getattr(te, "__fp8_conformance_standin__", False):
        pytest.skip("only the conformance stand-in of transformer_engine is importable; it has no kernels")
    run = run_trainer(impl, tmp_path, backend="te", cuda=True)
    check_run(run, te.Linear, "transformer_engine.pytorch.Linear")
