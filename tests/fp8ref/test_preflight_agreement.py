"""Preflight agrees with the run: for each config, ``fp8ref preflight``'s prediction (FP8 on or off, backend, recipe in
effect, the converted layer names, compiled or eager) equals what a real tiny HF ``Trainer`` run reports after
``train()``, read from its accelerator (``fp8ref.preflight.agreement.observed``). The run uses the HF Trainer's call
order with fp8ref's helpers (``configure_fp8_environment(args)``, ``patch_accelerator_for_fp8()``, ``Trainer``), on the
CPU; the compiled config uses dynamo's ``eager`` backend (``torch_compile_backend``) to keep the CPU time small: the
model is compiled all the same. The DeepSpeed configs (ZeRO-2, ZeRO-3, one process) run preflight and the real run
in a process of their own (DeepSpeed keeps process-wide state), preflight first."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
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
    "deepspeed-zero-2": {"deepspeed": 2},
    "deepspeed-zero-3": {"deepspeed": 3},
}
ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, name: str) -> tuple[Path, Path, dict[str, Any], int | None]:
    spec = dict(CONFIGS[name])
    model_config = {**TINY, **spec.pop("model", {})}
    lora_rank = spec.pop("lora_rank", None)
    arguments = {**BASE, **spec, "output_dir": str(tmp_path / "out")}
    if "deepspeed" in spec:
        deepspeed = tmp_path / "zero.json"
        zero = {"zero_optimization": {"stage": spec["deepspeed"]}, "train_micro_batch_size_per_gpu": "auto"}
        deepspeed.write_text(json.dumps({**zero, "gradient_accumulation_steps": "auto", "train_batch_size": "auto"}))
        arguments["deepspeed"] = str(deepspeed)
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


def _tiny_model(model_path: Path) -> Any:
    import transformers

    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(**json.loads(model_path.read_text()))
    return transformers.AutoModelForCausalLM.from_config(config)


def _real_run(model_path: Path, arguments: dict[str, Any], lora_rank: int | None) -> Any:
    """A real HF Trainer run in the HF Trainer's call order with fp8ref's helpers; its accelerator after train()."""
    from transformers import Trainer, TrainingArguments

    fp8_fields = {name: arguments.pop(name) for name in ("fp8", "fp8_backend")}
    args = TrainingArguments(**arguments)
    for name, value in fp8_fields.items():
        setattr(args, name, value)
    model = _tiny_model(model_path)
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


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _child(config_path: str, model_path: str, out: str) -> None:
    """A DeepSpeed config in a process of its own: preflight, then the real run; both outcomes to ``out``."""
    arguments = json.loads(Path(config_path).read_text())
    report = preflight(config_path, model=model_path)
    outcome = observed(_real_run(Path(model_path), arguments, None))
    Path(out).write_text(json.dumps({"predicted": predicted(report).to_dict(), "observed": outcome.to_dict()}))


def _in_a_child(config_path: Path, model_path: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    out = tmp_path / "outcomes.json"
    code = "import sys; from tests.fp8ref.test_preflight_agreement import _child; _child(*sys.argv[1:])"
    one_rank = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "DS_ACCELERATOR": "cpu"}
    env = {**os.environ, **one_rank, "MASTER_PORT": _free_port(), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", code, str(config_path), str(model_path), str(out)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    outcomes = json.loads(out.read_text())
    return outcomes["predicted"], outcomes["observed"]


@pytest.mark.parametrize("name", [name for name in CONFIGS if name.startswith("deepspeed")])
def test_prediction_equals_the_real_deepspeed_run(name: str, tmp_path: Path) -> None:
    config_path, model_path, _, _ = _write(tmp_path, name)
    prediction, outcome = _in_a_child(config_path, model_path, tmp_path)
    assert prediction == outcome
    assert prediction["fp8_on"] and len(prediction["converted"]) == len(PROJECTIONS) * TINY["num_hidden_layers"]


@pytest.mark.parametrize("name", [name for name in CONFIGS if not name.startswith("deepspeed")])
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


def test_a_crash_in_prepare_is_predicted_as_the_run_crashes(tmp_path: Path) -> None:
    """The suite's broken implementation whose configure writes only the environment, in LLaMA-Factory's call order
    (no patch call for torchao): the Trainer's Accelerator is not in FP8 but reads ``ACCELERATE_FP8_BACKEND=AO``, and
    accelerate's ``_prepare_ao`` fails. Preflight says where and how; the real run fails the same way in ``train()``."""
    import importlib

    from transformers import Trainer, TrainingArguments

    broken = str(ROOT / "tests" / "conformance_meta" / "broken")
    sys.path.insert(0, broken)  # the conftest's isolation puts sys.path back
    helpers = "fp8broken_configure_leaves_the_crash"
    config = tmp_path / "config.yaml"
    config.write_text(f"model_name_or_path: {ROOT / 'fp8ref' / 'data' / 'tiny_llama.json'}\nfp8: true\n")
    report = preflight(str(config), helpers=helpers)
    failure = report.decisions.prepare_failure if report.decisions else None
    assert failure is not None and not report.fp8_on
    assert report.verdict().startswith("FP8 WILL BE OFF: ") and "accelerator.prepare(model) raises" in report.render()
    model_path = tmp_path / "model.json"
    model_path.write_text(json.dumps(TINY))
    plain = {name: value for name, value in BASE.items() if not name.startswith("fp8")}
    args = TrainingArguments(**plain, output_dir=str(tmp_path / "out"))
    args.fp8, args.fp8_backend = True, "torchao"
    importlib.import_module(helpers).configure_fp8_environment(args)
    trainer = Trainer(model=_tiny_model(model_path), args=args, train_dataset=_Tokens())
    with pytest.raises(Exception) as raised:
        trainer.train()
    assert failure == f"{type(raised.value).__name__}: {raised.value}"
