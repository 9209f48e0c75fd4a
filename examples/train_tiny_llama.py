"""Train a tiny Llama with FP8 through the Hugging Face Trainer, on the CPU, with fp8ref.

    python examples/train_tiny_llama.py                    # FP8 (torchao, rowwise), 40 steps
    python examples/train_tiny_llama.py --bf16-baseline    # the same run without FP8, for comparison
    python examples/train_tiny_llama.py --recipe tensorwise --steps 50 --seed 1
    python examples/train_tiny_llama.py --deepspeed zero3      # under DeepSpeed ZeRO-3 (pip install deepspeed)
    python examples/train_tiny_llama.py --lora-rank 16         # LoRA (pip install peft): base layers in FP8

What it shows: the two calls that make the Trainer train in FP8 (``configure_fp8_environment`` and
``patch_accelerator_for_fp8``, both before the Trainer builds its ``Accelerator``), the loss at every step,
and, at the end, ``verify_fp8_status``'s report: whether FP8 is in effect, which linear layers run in FP8 and
which were kept in high precision, and why.

The model is the conformance suite's tiny Llama (``fp8ref_conformance.kit.models``), built from a
``LlamaConfig`` (no download) with projection sizes divisible by 16 and small
enough for torchao's float8 kernels on a CPU, which are slow (they exist for correctness, not speed): expect
about half a second per step here. On a GPU (``--cuda``) the same script runs the real FP8 kernels.
The data are synthetic sequences (arithmetic progressions modulo the vocabulary), so the loss falls quickly.

``--deepspeed zero2|zero3|CONFIG.json`` passes a DeepSpeed config to ``TrainingArguments(deepspeed=...)``; on the
CPU it runs as one process with ``DS_ACCELERATOR=cpu`` (set here when unset, with the rendezvous variables).
``--lora-rank R`` wraps the model with ``peft.get_peft_model`` (LoRA on the seven projections, or
``--lora-targets``): the frozen base layers run in FP8, the adapters stay in high precision, and the report
lists them under their own heading.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass
from typing import Any

# torchao warns on import about its CUDA-only extensions, and torch about torchao's enum registrations:
# both are harmless on the CPU and would bury the output.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

import torch  # noqa: E402
from transformers import (  # noqa: E402
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

import fp8ref  # noqa: E402
from fp8ref_conformance.kit.models import TINY_LLAMA_VOCAB, tiny_llama  # noqa: E402

VOCAB = TINY_LLAMA_VOCAB
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class FP8Args:
    """The FP8 part of a training configuration: the attributes fp8ref reads."""

    fp8: bool = True
    fp8_backend: str = "auto"
    fp8_enable_fsdp_float8_all_gather: bool = False
    fp8_recipe: str | None = None
    fp8_auto_filter: bool = False


class ArithmeticSequences(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """``x_t = (a + b * t) mod VOCAB`` for random ``a``, ``b``: learnable next-token prediction."""

    def __init__(self, count: int, seq_len: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        start = torch.randint(0, VOCAB, (count, 1), generator=generator)
        stride = torch.randint(1, 8, (count, 1), generator=generator)
        self.ids = (start + stride * torch.arange(seq_len)) % VOCAB

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index].clone()}


def step_line(state: TrainerState, logs: dict[str, Any], seconds: float) -> str:
    return (
        f"step {state.global_step:>4}/{state.max_steps} | loss {float(logs['loss']):.4f} | "
        f"lr {float(logs.get('learning_rate', math.nan)):.2e} | {seconds:.2f} s"
    )


class StepLossPrinter(TrainerCallback):
    """One line per step: loss, learning rate, time of the step."""

    def __init__(self) -> None:
        super().__init__()
        self.step_started = time.perf_counter()

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.step_started = time.perf_counter()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        if state.is_world_process_zero and logs and "loss" in logs:
            self.emit(step_line(state, logs, time.perf_counter() - self.step_started))

    def emit(self, line: str) -> None:
        print(line, flush=True)


class StepLossProgress(StepLossPrinter, ProgressCallback):
    """The Trainer's progress bar, with the per-step line written above it instead of the raw log dict."""

    def emit(self, line: str) -> None:
        if self.training_bar is None:
            super().emit(line)
            return
        self.training_bar.write(line)
        sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None, help="Trainer output folder (default: a temporary one)")
    parser.add_argument(
        "--recipe",
        choices=["rowwise", "tensorwise", "rowwise_with_gw_hp"],
        default=None,
        help="torchao recipe (default: fp8ref's choice, rowwise)",
    )
    parser.add_argument("--backend", choices=["auto", "torchao", "te"], default="auto", help="FP8 backend")
    parser.add_argument("--bf16-baseline", action="store_true", help="train without FP8 (bf16 autocast) to compare")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--cuda", action="store_true", help="train on the GPU instead of the CPU")
    parser.add_argument("--no-progress-bar", action="store_true", help="per-step lines only")
    parser.add_argument(
        "--deepspeed", metavar="zero2|zero3|CONFIG.json", help="train under DeepSpeed ZeRO (pip install deepspeed)"
    )
    parser.add_argument("--lora-rank", type=int, help="train LoRA adapters of this rank (pip install peft)")
    parser.add_argument(
        "--lora-targets", default=",".join(PROJECTIONS), help="comma-separated layers LoRA wraps (default: all 7)"
    )
    return parser.parse_args(argv)


def deepspeed_config(choice: str, cuda: bool) -> dict[str, Any]:
    """A ZeRO config (``zero2``, ``zero3``, or a JSON file), and a one-process DeepSpeed environment."""
    if choice in ("zero2", "zero3"):
        config: dict[str, Any] = {
            "zero_optimization": {"stage": int(choice[-1])},
            "train_micro_batch_size_per_gpu": "auto",
            "train_batch_size": "auto",
            "gradient_accumulation_steps": "auto",
        }
    else:
        with open(choice) as handle:
            config = json.load(handle)
    # A single process unless a launcher (deepspeed, torchrun, accelerate launch) set these already.
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29517"), ("RANK", "0")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    # torch deprecates the collectives DeepSpeed 0.19 calls; one warning per call would bury the step lines.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        # One CPU process has no collectives worth DeepSpeed's shared-memory op, which it would otherwise build
        # with the system compiler at first use (a minute on a small machine): plain torch.distributed instead.
        import importlib

        comm = importlib.import_module("deepspeed.comm.torch")
        comm.build_shm_op = lambda: None
    return config


def with_lora(model: torch.nn.Module, rank: int, targets: list[str]) -> torch.nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise SystemExit(f"--lora-rank needs peft: pip install peft ({exc})") from exc
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    peft_model: torch.nn.Module = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    print(f"== LoRA rank {rank} on {', '.join(targets)}: {trainable} of {total} parameters train", flush=True)
    return peft_model


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    fp8_args = FP8Args(fp8=not options.bf16_baseline, fp8_backend=options.backend, fp8_recipe=options.recipe)

    fp8ref_logger = logging.getLogger("fp8ref")
    fp8ref_logger.addHandler(logging.StreamHandler(sys.stdout))
    fp8ref_logger.setLevel(logging.INFO)
    mode = "bf16 baseline (FP8 off)" if options.bf16_baseline else f"FP8 (backend {options.backend})"
    if options.deepspeed:
        mode += f", DeepSpeed {options.deepspeed}"
    if options.lora_rank:
        mode += f", LoRA rank {options.lora_rank}"
    print(f"== tiny Llama, {options.layers} layers, {options.steps} steps, {mode}, seed {options.seed}", flush=True)
    if fp8_args.fp8:
        # Both before the Trainer exists: the Trainer builds its own Accelerator inside its __init__.
        try:
            fp8ref.configure_fp8_environment(fp8_args)
            fp8ref.patch_accelerator_for_fp8(fp8_args)
        except (ImportError, ValueError) as exc:
            print(f"FP8 cannot be set up: {exc}", file=sys.stderr)
            return 2
    fp8ref_logger.setLevel(logging.WARNING)  # the report is printed below; warnings still show

    extra: dict[str, Any] = {}
    if options.deepspeed:
        try:
            extra["deepspeed"] = deepspeed_config(options.deepspeed, options.cuda)
        except ImportError as exc:
            print(f"--deepspeed needs DeepSpeed: pip install deepspeed ({exc})", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="fp8ref-tiny-llama-") as scratch:
        training_args = TrainingArguments(
            output_dir=options.output_dir or scratch,
            max_steps=options.steps,
            per_device_train_batch_size=options.batch_size,
            learning_rate=options.lr,
            warmup_steps=0,
            lr_scheduler_type="constant",
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=not options.cuda,
            bf16=options.bf16_baseline,
            seed=options.seed,
            disable_tqdm=options.no_progress_bar,
            **extra,
        )
        dataset = ArithmeticSequences(
            count=max(64, options.steps * options.batch_size), seq_len=options.seq_len, seed=1
        )
        model = tiny_llama(seed=options.seed, layers=options.layers, max_positions=max(64, options.seq_len))
        if options.lora_rank:
            model = with_lora(model, options.lora_rank, options.lora_targets.split(","))
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=dataset,
        )
        # Replace the Trainer's own printing of the log dictionaries by one line per step.
        if options.no_progress_bar:
            trainer.remove_callback(PrinterCallback)
            trainer.add_callback(StepLossPrinter())
        else:
            trainer.remove_callback(ProgressCallback)
            trainer.add_callback(StepLossProgress())
        started = time.perf_counter()
        output = trainer.train()
        elapsed = time.perf_counter() - started

    losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    print(
        f"== trained {trainer.state.global_step} steps in {elapsed:.1f} s: first loss {losses[0]:.4f}, "
        f"last loss {losses[-1]:.4f}, mean {output.training_loss:.4f}",
        flush=True,
    )
    report = fp8ref.verify_fp8_status(trainer.accelerator, fp8_args)
    print("== verify_fp8_status report")
    print(report.summary())
    if report.converted:
        print(
            textwrap.fill(
                ", ".join(report.converted), width=110, initial_indent="  converted: ", subsequent_indent="    "
            )
        )
    print(flush=True)
    return 0 if (not fp8_args.fp8 or report.in_effect) and all(map(math.isfinite, losses)) else 1


if __name__ == "__main__":
    sys.exit(main())
