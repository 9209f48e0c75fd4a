"""A tiny HF ``Trainer`` run for the Trainer clauses (C12d, C14, C16 DeepSpeed, C17 LoRA): the training
arguments with the three FP8 attributes, the fixed batch, and one run that records what the clauses look at
(verify's outcome at each phase, and the TE recipe in effect where TE layers run).

Only the five contract functions, accelerate, torch, torchao and transformers are used (and ``peft`` for
LoRA, by the caller). The model is :func:`.models.tiny_llama`; the batch is fixed (the dataset holds exactly
one batch), so a loss after N steps is comparable between an FP8 run and the same run without FP8.
The C16 child (``children/deepspeed_trainer.py``) imports this module in its own process; C12's runs, which
look at verify where the Trainer calls it, are :mod:`.trainer_verify`.
"""

from __future__ import annotations

import dataclasses
import math
import types
from pathlib import Path
from typing import Any

import torch

from ..implementation import Implementation
from .logs import capture_logs
from .models import LLAMA_PROJECTIONS, TINY_LLAMA_LAYERS, TINY_LLAMA_VOCAB
from .verdicts import apply_patch

PROJECTIONS = LLAMA_PROJECTIONS
NUM_LAYERS = TINY_LLAMA_LAYERS
VOCAB = TINY_LLAMA_VOCAB
SEQ_LEN = 32
BATCH = 4
LEARNING_RATE = 3e-3
#: C16b and C17c: "after 20 steps on a fixed batch the loss is within 10% of the run without FP8".
LOSS_STEPS = 20
LOSS_TOLERANCE = 0.10
#: torchao's FP8 layer class, by name (so that this module imports without torchao).
FLOAT8_LINEAR = "Float8Linear"


def training_arguments_class() -> type:
    """``TrainingArguments`` with the three FP8 attributes, as projects that use the helpers define it."""
    from transformers import TrainingArguments

    @dataclasses.dataclass
    class FP8TrainingArguments(TrainingArguments):
        fp8: bool = False
        fp8_backend: str = "auto"
        fp8_enable_fsdp_float8_all_gather: bool = False

    return FP8TrainingArguments


class FixedBatch(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """``BATCH`` fixed random token sequences per rank: every step sees the same batch."""

    def __init__(self, count: int = BATCH, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (count, SEQ_LEN), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index].clone()}


def training_arguments(
    output_dir: Path,
    *,
    fp8: bool,
    steps: int,
    all_gather: bool = False,
    backend: str = "torchao",
    cuda: bool = False,
    **extra: Any,
) -> Any:
    """Training arguments for a run of ``steps`` steps (CPU in fp32, or CUDA in bf16), logging the loss at
    every step; ``extra`` adds or overrides ``TrainingArguments`` fields."""
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "max_steps": steps,
        "per_device_train_batch_size": BATCH,
        "learning_rate": LEARNING_RATE,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": not cuda,
        "bf16": cuda,
        "disable_tqdm": True,
        "seed": 0,
        "fp8": fp8,
        "fp8_backend": backend,
        "fp8_enable_fsdp_float8_all_gather": all_gather,
    }
    values.update(extra)
    return training_arguments_class()(**values)


def module_classes(model: torch.nn.Module) -> dict[str, str]:
    """Qualified class name (``module.Class``) of every module of ``model`` by FQN, as the Trainer holds it."""
    return {fqn: f"{type(m).__module__}.{type(m).__qualname__}" for fqn, m in model.named_modules() if fqn}


def is_torchao_float8(class_name: str) -> bool:
    return class_name.startswith("torchao.") and class_name.endswith("." + FLOAT8_LINEAR)


def is_te_linear(class_name: str) -> bool:
    return class_name.startswith("transformer_engine.") and class_name.endswith(".Linear")


def projections(classes: dict[str, str]) -> dict[str, str]:
    """The q/k/v/o/gate/up/down projections (by last FQN component) and their classes."""
    return {fqn: cls for fqn, cls in classes.items() if fqn.rsplit(".", 1)[-1] in PROJECTIONS}


def parameter_values(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter (plain tensors: float8 wrappers are read through ``float()``)."""
    return {name: param.detach().float().clone() for name, param in model.named_parameters()}


@dataclasses.dataclass
class RunRecord:
    """What the clauses look at after one ``Trainer(...).train()``. ``verify`` holds, by phase, what verify did
    (:func:`.verify_outcome.outcome_to_dict`): ``init`` (called at the end of ``Trainer.__init__``, where
    LLaMA-Factory calls it), ``train`` (the records of ``train()``, where a deferred check follows up) and ``after``
    (called after ``train()``); a phase the run did not have is absent. ``te_forwards`` is the TE recipe in effect at
    the TE layers' forwards (:class:`.te_recipes.RecipeRecorder`), when recorded."""

    losses: list[float]
    classes: dict[str, str]
    fp8_enabled: bool | None
    verify: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    changed: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    te_forwards: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def offers(impl: Any, name: str) -> bool:
    """Whether ``impl`` offers the contract function ``name``: the suite's view of the implementation knows what it
    lacks (asking it for a missing one fails the test as ``missing``); a plain module (in a child) is asked."""
    if isinstance(impl, types.ModuleType):
        return callable(getattr(impl, name, None))
    return name not in getattr(impl, "missing", ())


class RecordTERecipes:
    """A Trainer callback that attaches a :class:`.te_recipes.RecipeRecorder` to the prepared model."""

    def __init__(self) -> None:
        from .te_recipes import RecipeRecorder

        self.recorder = RecipeRecorder()

    def callback(self) -> Any:
        from transformers import TrainerCallback

        recorder = self.recorder

        class AttachAtTrainBegin(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                model = kwargs.get("model")
                if isinstance(model, torch.nn.Module):
                    recorder.attach(model)

        return AttachAtTrainBegin()


def configure_and_patch(impl: Any, args: Any) -> None:
    """The implementation's FP8 environment and patch for ``args``, as a training script applies them before
    ``Trainer(...)``; a TE import in the patch on the torchao path blocks the caller on C13d."""
    impl.configure_fp8_environment(args)
    apply_patch(impl, args.fp8_backend)


def run_trainer(
    impl: Implementation | types.ModuleType | None,
    args: Any,
    model: torch.nn.Module,
    *,
    track_parameters: bool = False,
    callbacks: list[Any] | None = None,
    verify_at_init: bool = False,
    record_te_recipes: bool = False,
) -> RunRecord:
    """Arguments first, then (for FP8, ``impl`` given) the implementation's environment and patch, then
    ``Trainer(...)``, verify at the end of ``__init__`` when ``verify_at_init``, ``train()`` with its log records
    captured, then ``verify_fp8_status``. Where the implementation lacks verify, the run has no verify phases (the
    clauses that need verify say ``missing`` on their own).

    Without ``impl`` it is the same run without FP8 (no environment, no patch, ``args.fp8`` false). A patch that
    imports ``transformer_engine`` on the torchao path raises :class:`.verdicts.Blocked` (C13d).
    """
    from transformers import Trainer

    from .verify_outcome import Outcome, call_verify, outcome_to_dict

    if impl is not None:
        configure_and_patch(impl, args)
    verifies = impl is not None and offers(impl, "verify_fp8_status")
    before = parameter_values(model) if track_parameters else {}
    recipes = RecordTERecipes() if record_te_recipes else None
    callbacks = [*(callbacks or []), *([recipes.callback()] if recipes is not None else [])]
    trainer = Trainer(model=model, args=args, train_dataset=FixedBatch(), callbacks=callbacks)
    phases: dict[str, dict[str, Any]] = {}
    if verifies and verify_at_init:
        phases["init"] = outcome_to_dict(call_verify(impl, trainer.accelerator, args))
    with capture_logs() as logs:
        trainer.train()  # an exception here is the run's failure: not captured
    if verifies and verify_at_init:
        phases["train"] = outcome_to_dict(Outcome(logs=logs))
    trained = trainer.model
    assert isinstance(trained, torch.nn.Module), f"Trainer.model is {type(trained).__name__}"
    losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    if verifies:
        phases["after"] = outcome_to_dict(call_verify(impl, trainer.accelerator, args))
    record = RunRecord(
        losses=losses,
        classes=module_classes(trained),
        fp8_enabled=getattr(trainer.accelerator, "fp8_enabled", None),
        verify=phases,
        te_forwards=recipes.recorder.summary() if recipes is not None else None,
    )
    if track_parameters:
        after = parameter_values(trained)
        record.changed = sorted(name for name in before if not torch.equal(before[name], after.get(name, before[name])))
        record.unchanged = sorted(name for name in before if name not in record.changed)
        missing = sorted(set(before) - set(after))
        if missing:
            raise AssertionError(f"parameters disappeared during training: {missing}")
    return record


def losses_close(fp8_losses: list[float], reference_losses: list[float], steps: int = LOSS_STEPS) -> str | None:
    """``None`` when both runs logged ``steps`` finite losses and the final FP8 loss is within
    ``LOSS_TOLERANCE`` of the final reference loss, and the FP8 loss went down; else what is wrong."""
    if len(fp8_losses) != steps or len(reference_losses) != steps:
        return f"expected {steps} logged losses per run, got {len(fp8_losses)} (FP8) and {len(reference_losses)}"
    if not all(math.isfinite(x) for x in fp8_losses + reference_losses):
        return f"non-finite loss: FP8 {fp8_losses}, reference {reference_losses}"
    if not fp8_losses[-1] < fp8_losses[0]:
        return f"the FP8 loss did not decrease over {steps} steps: {fp8_losses}"
    gap = abs(fp8_losses[-1] - reference_losses[-1]) / abs(reference_losses[-1])
    if gap > LOSS_TOLERANCE:
        return (
            f"final FP8 loss {fp8_losses[-1]:.4f} is {100 * gap:.1f}% away from the run without FP8 "
            f"({reference_losses[-1]:.4f}); allowed {100 * LOSS_TOLERANCE:.0f}%"
        )
    return None
