"""C14 Trainer end to end: FP8 must survive the Hugging Face ``Trainer``, which builds its own ``Accelerator``.

The order is the one real training scripts follow (and LLaMA-Factory's trainers): the training arguments
(a ``transformers.TrainingArguments`` that also carries the three FP8 attributes of the contract) exist
first, then ``configure_fp8_environment(args)`` and ``patch_accelerator_for_fp8()``, then the ``Trainer`` is
built and ``train()`` runs three steps. The ``Trainer`` passes ``mixed_precision=args.mixed_precision``
(computed when the arguments were built) and a ``DistributedDataParallelKwargs`` handler to its
``Accelerator``: an implementation whose environment or patch does not survive that leaves every layer in
high precision, which is what this clause exists to catch. ``verify_fp8_status`` after ``train()`` must be quiet as
C12 defines it: the Trainer runs eagerly, so the C12e notice (one WARNING naming ``torch.compile``) is allowed.

C14b is the order of LLaMA-Factory 0.9.5's trainers, the real client: the arguments exist first, then
``configure_fp8_environment(args)``, ``patch_accelerator_for_fp8()`` only when ``fp8_backend`` is ``te``, the HF
``Trainer.__init__``, ``verify_fp8_status`` at its end, then ``train()``. For torchao (no patch call)
``configure_fp8_environment`` alone must make the Trainer's Accelerator FP8; for Transformer Engine the suite's
stand-in runs on the CPU (high-precision layers, TE's FP8 state recording which recipe is in effect).

Only the five contract functions, accelerate, torch, torchao and transformers are used. The model is a tiny
``LlamaForCausalLM`` built from a ``LlamaConfig`` (no download) whose projections (64x64, 64x128, 128x64)
are divisible by 16 and small enough for torchao's real float8 kernels on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from .implementation import Implementation
from .kit.capabilities import cuda_fp8_skip_reason
from .kit.env import env_snapshot, fp8_env_prefixes
from .kit.logs import capture_logs
from .kit.models import tiny_llama
from .kit.standin_te import standin_te
from .kit.te_recipes import recipe_problems
from .kit.trainer import NUM_LAYERS, PROJECTIONS, FixedBatch, RecordTERecipes, training_arguments
from .kit.verdicts import apply_patch
from .kit.verify_outcome import Outcome, assert_quiet, call_verify, is_library_record

MAX_STEPS = 3


@dataclasses.dataclass
class TrainerRun:
    trainer: Any
    args: Any
    losses: list[float]
    train_loss: float
    verify: Outcome


def run_trainer(impl: Implementation, output_dir: Path, *, backend: str, cuda: bool) -> TrainerRun:
    """Arguments, then the implementation's environment and patch, then ``Trainer(...).train()``, then
    ``verify_fp8_status`` (its log records captured)."""
    from transformers import Trainer

    args = training_arguments(output_dir, fp8=True, steps=MAX_STEPS, backend=backend, cuda=cuda, learning_rate=1e-3)
    impl.configure_fp8_environment(args)
    apply_patch(impl, backend)  # on the torchao path a TE import there is C13d's defect: C14 is blocked
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=FixedBatch(count=16))
    output = trainer.train()
    losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    verify = call_verify(impl, trainer.accelerator, args)
    return TrainerRun(trainer=trainer, args=args, losses=losses, train_loss=float(output.training_loss), verify=verify)


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
    # Quiet as C12 defines it: the Trainer runs eagerly here, so the C12e notice is allowed (and nothing else).
    assert_quiet(run.verify, f"FP8 is in effect after Trainer.train() ({what} projections)")


@pytest.fixture
def clean_fp8_env() -> Any:
    """No ``ACCELERATE_*``/``FP8_*`` variable from the caller's shell leaks into the run."""
    with env_snapshot(drop_prefixes=fp8_env_prefixes()) as env:
        yield env


# --------------------------------------------------------------------------- CPU


@pytest.mark.parametrize("backend", ["torchao", "auto"])
def test_c14_trainer_converts_projections_cpu(
    impl: Implementation, tmp_path: Path, clean_fp8_env: Any, backend: str
) -> None:
    """C14 on the CPU with torchao, named and resolved from ``auto`` (torchao comes first when installed)."""
    from torchao.float8.float8_linear import Float8Linear

    run = run_trainer(impl, tmp_path, backend=backend, cuda=False)
    check_run(run, Float8Linear, "torchao Float8Linear")


# --------------------------------------------------------------------------- b, the trainers' call order


@dataclasses.dataclass
class CallOrderRun:
    trainer: Any
    args: Any
    at_init: Outcome
    in_train: Outcome
    te_forwards: list[dict[str, Any]]


def run_in_llamafactory_order(impl: Implementation, output_dir: Path, backend: str) -> CallOrderRun:
    """LLaMA-Factory 0.9.5's trainers: the ``TrainingArguments`` exist first (their ``mixed_precision`` read from
    an environment without FP8), then ``configure_fp8_environment(a)``, ``patch_accelerator_for_fp8()`` only for
    ``te``, the HF ``Trainer.__init__``, verify at the end of ``__init__``, then ``train()``."""
    from transformers import Trainer

    args = training_arguments(output_dir, fp8=True, steps=MAX_STEPS, backend=backend, learning_rate=1e-3)
    impl.configure_fp8_environment(args)
    if backend == "te":
        impl.patch_accelerator_for_fp8()
    recipes = RecordTERecipes()
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=FixedBatch(count=16), callbacks=[recipes.callback()])
    at_init = call_verify(impl, trainer.accelerator, args)
    with capture_logs() as logs:
        trainer.train()
    return CallOrderRun(trainer, args, at_init, Outcome(logs=logs), recipes.recorder.summary())


def _own_warnings(outcome: Outcome) -> list[Any]:
    return [r for r in outcome.logs.at_least(logging.WARNING) if not is_library_record(r)]


@pytest.mark.parametrize("backend", ["torchao", "te"])
def test_c14b_llamafactory_call_order_converts_projections_cpu(
    impl: Implementation, tmp_path: Path, clean_fp8_env: Any, standin_te_dir: Path, backend: str
) -> None:
    """C14b on the CPU: torchao without a patch call (``configure_fp8_environment`` alone must make the Trainer's
    Accelerator FP8), and Transformer Engine (the suite's stand-in: high precision, recording what recipe is in
    effect) with it. Every projection is an FP8 layer built with the implementation's recipe (and, for torchao,
    exactly the layers its filter accepts), ``lm_head`` is not, and verify is quiet at ``__init__`` and in
    ``train()``, where its deferred check follows up."""
    with contextlib.ExitStack() as stack:
        if backend == "te":
            stack.enter_context(standin_te(standin_te_dir))
        run = run_in_llamafactory_order(impl, tmp_path, backend)
        assert run.args.mixed_precision != "fp8", "precondition: the arguments were built before configure"
        (handler,) = impl.create_fp8_kwargs(run.args)  # the implementation's own recipe, to judge the layers by
        model = run.trainer.model
        if backend == "torchao":
            from torchao.float8.float8_linear import Float8Linear

            fp8_layer: type = Float8Linear
            _check_call_order_torchao(run, handler)
        else:
            import transformer_engine.pytorch as te

            fp8_layer = te.Linear
            expected = {
                name: getattr(handler, name) for name in ("fp8_format", "amax_history_len", "amax_compute_algo")
            }
            problems = list(recipe_problems(run.te_forwards, expected))
            assert not problems, f"the TE layers did not run with the implementation's recipe: {problems}"
        not_converted = {
            fqn: cls.__name__ for fqn, cls in projection_types(model).items() if not issubclass(cls, fp8_layer)
        }
        assert not not_converted, (
            f"in LLaMA-Factory's call order ({backend}: configure"
            f"{', patch' if backend == 'te' else ''}, Trainer, verify, train) these projections are not "
            f"{fp8_layer.__name__} after train(); the Trainer's Accelerator had "
            f"fp8_enabled={run.trainer.accelerator.fp8_enabled} (the arguments carried "
            f"mixed_precision={run.args.mixed_precision!r} from before configure): {not_converted}"
        )
        assert len(projection_types(model)) == len(PROJECTIONS) * NUM_LAYERS
        head = lm_head_of(model)
        assert not isinstance(head, fp8_layer), f"lm_head was converted to {type(head).__name__}"
    assert_quiet(run.at_init, "verify ran at the end of Trainer.__init__ with FP8 requested (no model prepared yet)")
    assert_quiet(run.in_train, "train() prepared a model whose projections are FP8 layers", records=_own_warnings)


def _check_call_order_torchao(run: CallOrderRun, handler: Any) -> None:
    """Exactly the linear layers that the implementation's filter accepts are ``Float8Linear``, each with the
    implementation's config."""
    from torchao.float8.float8_linear import Float8Linear

    model = run.trainer.model
    original = tiny_llama()  # the same architecture: the same FQNs, asked of the filter as they were
    accepted = {
        fqn
        for fqn, m in original.named_modules()
        if isinstance(m, torch.nn.Linear) and handler.module_filter_func(m, fqn)
    }
    converted = {fqn: m for fqn, m in model.named_modules() if isinstance(m, Float8Linear)}
    assert set(converted) == accepted, (
        f"converted {sorted(converted)}, but the implementation's filter accepts {sorted(accepted)}"
    )
    wrong = sorted(fqn for fqn, m in converted.items() if m.config != handler.config)
    assert not wrong, f"these layers do not carry the implementation's config {handler.config}: {wrong}"


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_c14_cuda_torchao_trainer(impl: Implementation, tmp_path: Path, clean_fp8_env: Any) -> None:
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
def test_c14_cuda_te_trainer(impl: Implementation, tmp_path: Path, clean_fp8_env: Any) -> None:
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
