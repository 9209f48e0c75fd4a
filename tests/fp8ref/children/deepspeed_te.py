"""Script that ``tests/fp8ref/test_deepspeed_te_recipe.py`` runs in a process of its own: Transformer Engine (the
conformance suite's stand-in, on ``PYTHONPATH``) under DeepSpeed on one CPU rank, by each way the DeepSpeed config
reaches accelerate. DeepSpeed keeps process-wide state (its accelerator, ``deepspeed.comm``, the process group),
hence the process; each case starts from the environment and ``Accelerator`` class as they were at the start.

Usage: ``deepspeed_te.py --out RESULT.json --work DIR``. For each case it records the recipe that the stand-in's
``fp8_autocast`` received in the first training forward, the handler classes the Accelerator held, and the
classes of the model's linear layers:

- ``trainer-json-path``: LLaMA-Factory's call order (``configure_fp8_environment``, ``patch_accelerator_for_fp8()``
  as its TE branch does, HF ``Trainer``, ``verify_fp8_status``, ``train()``), ``TrainingArguments(deepspeed=PATH)``
  with ZeRO-2;
- ``env``: what ``accelerate launch`` with a DeepSpeed accelerate config sets (``ACCELERATE_USE_DEEPSPEED=true``,
  ``ACCELERATE_DEEPSPEED_CONFIG_FILE``), then ``configure_fp8_environment``, ``Accelerator()``,
  ``prepare(model, optimizer)`` (ZeRO-3), one step; also ``create_fp8_kwargs`` there;
- ``explicit-te-handler``: the same with a ``TERecipeKwargs`` passed by the caller (the patch keeps it and hands
  its recipe to the DeepSpeed path);
- ``unpatched``: the ``env`` case after ``unpatch_accelerator_for_fp8()``, with ``create_fp8_kwargs`` left out:
  accelerate by itself (the recipe it drops).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

HIDDEN, VOCAB, SEQ = 64, 64, 16
ZERO3 = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1}
ZERO2_AUTO = {
    "zero_optimization": {"stage": 2},
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": "auto",
}
RECIPE_FIELDS = ("fp8_format", "amax_history_len", "amax_compute_algo")


def tiny_llama() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=SEQ,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


class Batch(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.ids = torch.randint(0, VOCAB, (4, SEQ), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index].clone()}


def first_recipe() -> dict[str, Any] | None:
    te = importlib.import_module("transformer_engine.pytorch")
    calls = [call for call in te.AUTOCAST_CALLS if call.get("enabled")]
    if not calls:
        return None
    recipe = calls[0]["fp8_recipe"]
    if recipe is None:
        return {"recipe": None}
    fmt = getattr(recipe, "fp8_format", None)
    return {
        "recipe": type(recipe).__name__,
        "fp8_format": getattr(fmt, "name", str(fmt)),
        "amax_history_len": getattr(recipe, "amax_history_len", None),
        "amax_compute_algo": getattr(recipe, "amax_compute_algo", None),
    }


def linear_classes(model: nn.Module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for module in model.modules():
        name = f"{type(module).__module__}.{type(module).__name__}"
        if name.endswith(".Linear"):
            counts[name] = counts.get(name, 0) + 1
    return counts


def handlers(accelerator: Any) -> dict[str, str | None]:
    return {
        attr: (type(getattr(accelerator, attr)).__name__ if getattr(accelerator, attr, None) is not None else None)
        for attr in ("te_recipe_handler", "fp8_recipe_handler")
    }


def fp8_args(**extra: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(fp8=True, fp8_backend="te", fp8_enable_fsdp_float8_all_gather=False, **extra)


def trainer_case(work: Path) -> dict[str, Any]:
    import dataclasses

    from transformers import Trainer, TrainingArguments

    import fp8ref

    @dataclasses.dataclass
    class Args(TrainingArguments):
        fp8: bool = False
        fp8_backend: str = "auto"
        fp8_enable_fsdp_float8_all_gather: bool = False

    config = work / "zero2.json"
    config.write_text(json.dumps(ZERO2_AUTO))
    args = Args(
        output_dir=str(work / "trainer"),
        max_steps=1,
        per_device_train_batch_size=2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        deepspeed=str(config),
        fp8=True,
        fp8_backend="te",
    )
    fp8ref.configure_fp8_environment(args)
    fp8ref.patch_accelerator_for_fp8()
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=Batch())
    fp8ref.verify_fp8_status(trainer.accelerator, args)
    trainer.train()
    report = fp8ref.verify_fp8_status(trainer.accelerator, args)
    assert isinstance(trainer.model, nn.Module)
    return {
        "distributed_type": str(trainer.accelerator.distributed_type),
        "handlers": handlers(trainer.accelerator),
        "linear": linear_classes(trainer.model),
        "autocast": first_recipe(),
        "report": report.summary(),
    }


def accelerator_case(work: Path, *, explicit: bool = False, unpatched: bool = False) -> dict[str, Any]:
    from accelerate import Accelerator
    from accelerate.utils import TERecipeKwargs

    import fp8ref

    config = work / "zero3.json"
    config.write_text(json.dumps(ZERO3))
    os.environ.update({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(config)})
    fp8ref.configure_fp8_environment(fp8_args())
    created = [type(handler).__name__ for handler in fp8ref.create_fp8_kwargs(fp8_args())]
    kwargs_handlers: list[Any] = []
    if explicit:
        kwargs_handlers = [TERecipeKwargs(fp8_format="HYBRID", amax_history_len=32, amax_compute_algo="max")]
    if unpatched:
        fp8ref.unpatch_accelerator_for_fp8()
    accelerator = Accelerator(kwargs_handlers=kwargs_handlers)
    model = tiny_llama()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    engine, optimizer = accelerator.prepare(model, optimizer)
    batch = Batch()[0]
    loss = engine(input_ids=batch["input_ids"][None], labels=batch["labels"][None]).loss
    accelerator.backward(loss)
    optimizer.step()
    return {
        "distributed_type": str(accelerator.distributed_type),
        "created": created,
        "handlers": handlers(accelerator),
        "linear": linear_classes(accelerator.unwrap_model(engine)),
        "autocast": first_recipe(),
    }


CASES = {
    "trainer-json-path": lambda work: trainer_case(work),
    "env": lambda work: accelerator_case(work),
    "explicit-te-handler": lambda work: accelerator_case(work, explicit=True),
    "unpatched": lambda work: accelerator_case(work, unpatched=True),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    options = parser.parse_args()
    torch.set_num_threads(1)
    ds_torch = importlib.import_module("deepspeed.comm.torch")  # no JIT build of DeepSpeed's shm op (minutes)
    if hasattr(ds_torch, "build_shm_op"):
        setattr(ds_torch, "build_shm_op", lambda: None)  # noqa: B010 - an untyped module attribute

    import accelerate.accelerator as accelerator_module
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState, PartialState

    environ, class_namespace = dict(os.environ), dict(vars(Accelerator))
    module_namespace = dict(vars(accelerator_module))
    te = importlib.import_module("transformer_engine.pytorch")
    results: dict[str, Any] = {}
    for name, case in CASES.items():
        te.AUTOCAST_CALLS.clear()
        try:
            results[name] = case(options.work)
        except Exception as exc:  # recorded per case: the test says which one failed and why
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        os.environ.clear()
        os.environ.update(environ)
        for target, saved in ((Accelerator, class_namespace), (accelerator_module, module_namespace)):
            for attr in [a for a in vars(target) if a not in saved]:
                delattr(target, attr)
            for attr, value in saved.items():
                if attr not in ("__dict__", "__weakref__") and vars(target).get(attr) is not value:
                    setattr(target, attr, value)
        AcceleratorState._reset_state(True)
        PartialState._reset_state()
        GradientState._reset_state()
    options.out.write_text(json.dumps(results, indent=2))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
