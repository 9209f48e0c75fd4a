"""Preflight agrees with the run: for each config, ``fp8ref preflight``'s prediction (FP8 on or off, backend, recipe in
effect, the converted layer names, compiled or eager) equals what a real tiny HF ``Trainer`` run reports after
``train()``, read from its accelerator (``fp8ref.preflight.agreement.observed``). The run uses the HF Trainer's call
order with fp8ref's helpers (``configure_fp8_environment(args)``, ``patch_accelerator_for_fp8()``, ``Trainer``), on the
CPU; the compiled config uses dynamo's ``eager`` backend (``torch_compile_backend``) to keep the CPU time small: the
model is compiled all the same."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

import fp8ref
from fp8ref.preflight import preflight
from fp8ref.preflight.agreement import observed, predicted

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TINY = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 64,
    "max_position_embeddings": 64,
    "tie_word_embeddings": False,
}
BASE = {
    "fp8": True,
    "fp8_backend": "torchao",
    "use_cpu": True,
    "max_steps": 1,
    "per_device_train_batch_size": 2,
    "report_to": "none",
    "save_strategy": "no",
    "learning_rate": 1e-3,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "torchao": {},
    "bf16": {"bf16": True},
    "fp8-off": {"fp8": False},
    "lora-16": {"lora_rank": 16},
    "compiled": {"torch_compile": True, "torch_compile_backend": "eager"},
    "odd-layer": {"model": {"intermediate_size": 72}},
    "te": {"fp8_backend": "te"},
    "te-odd-layer": {"fp8_backend": "te", "model": {"intermediate_size": 72}},
}


def _write(tmp_path: Path, name: str) -> tuple[Path, Path, dict[str, Any], int | None]:
    spec = dict(CONFIGS[name])
    model_config = {**TINY, **spec.pop("model", {})}
    lora_rank = spec.pop("lora_rank", None)
    arguments = {**BASE, **spec, "output_dir": str(tmp_path / "out")}
    (tmp_path / "model").mkdir()
    model_path = tmp_path / "model" / "config.json"
    model_path.write_text(json.dumps(model_config))
    config_path = tmp_path / "args.json"
    config_path.write_text(json.dumps(arguments))
    return config_path, model_path, arguments, lora_rank


class _Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = (torch.arange(16) * (index + 1)) % TINY["vocab_size"]
        return {"input_ids": ids, "labels": ids.clone()}


def _real_run(model_path: Path, arguments: dict[str, Any], lora_rank: int | None) -> Any:
    """A real HF Trainer run in the HF Trainer's call order with fp8ref's helpers; its accelerator after train()."""
    import transformers
    from transformers import Trainer, TrainingArguments

    fp8_fields = {name: arguments.pop(name) for name in ("fp8", "fp8_backend")}
    args = TrainingArguments(**arguments)
    for name, value in fp8_fields.items():
        setattr(args, name, value)
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(**json.loads(model_path.read_text()))
    model = transformers.AutoModelForCausalLM.from_config(config)
    if lora_rank:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(task_type="CAUSAL_LM", r=lora_rank, lora_alpha=2 * lora_rank, target_modules=PROJECTIONS)
        model = get_peft_model(model, lora)
    fp8ref.configure_fp8_environment(args)
    if args.fp8:
        fp8ref.patch_accelerator_for_fp8()
    trainer = Trainer(model=model, args=args, train_dataset=_Tokens())
    trainer.train()
    return trainer.accelerator


def _fp8_environ() -> dict[str, str]:
    """The variables the helpers, accelerate and a DeepSpeed plugin set (imports of torch set others of their own)."""
    names = ("ACCELERATE_", "FP8_", "MASTER_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "DS_")
    return {name: value for name, value in os.environ.items() if name.startswith(names)}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_prediction_equals_the_real_trainer_run(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if CONFIGS[name].get("fp8_backend") == "te":
        request.getfixturevalue("standin_te")
    config_path, model_path, arguments, lora_rank = _write(tmp_path, name)
    environ = _fp8_environ()
    report = preflight(
        str(config_path), model=str(model_path), lora_rank=lora_rank, lora_targets=PROJECTIONS if lora_rank else None
    )
    assert _fp8_environ() == environ and not fp8ref.is_accelerator_patched()  # no lasting effect
    prediction = predicted(report)
    outcome = observed(_real_run(model_path, arguments, lora_rank))
    assert prediction == outcome, "\n".join(prediction.differences(outcome)) + "\n" + report.render()
    assert report.fp8_on is (name != "fp8-off")
