"""Train a tiny Llama with FP8 through the Hugging Face Trainer, on the CPU, with fp8ref.

    python examples/train_tiny_llama.py                    # FP8 (torchao, rowwise), 40 steps
    python examples/train_tiny_llama.py --bf16-baseline    # the same run without FP8, for comparison
    python examples/train_tiny_llama.py --recipe tensorwise --steps 50 --seed 1

What it shows: the two calls that make the Trainer train in FP8 (``configure_fp8_environment`` and
``patch_accelerator_for_fp8``, both before the Trainer builds its ``Accelerator``), the loss at every step,
and, at the end, ``verify_fp8_status``'s report: whether FP8 is in effect, which linear layers run in FP8 and
which were kept in high precision, and why.

The model is built from a ``LlamaConfig`` (no download) with projection sizes divisible by 16 and small
enough for torchao's float8 kernels on a CPU, which are slow (they exist for correctness, not speed): expect
about half a second per step here. On a GPU (``--cuda``) the same script runs the real FP8 kernels.
The data are synthetic sequences (arithmetic progressions modulo the vocabulary), so the loss falls quickly.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from typing import Any

# torchao warns on import about its CUDA-only extensions, and torch about torchao's enum registrations:
# both are harmless on the CPU and would bury the output.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

import torch  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig,
    LlamaForCausalLM,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

import fp8ref  # noqa: E402

VOCAB = 128


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


def tiny_llama(layers: int, seq_len: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=seq_len,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    fp8_args = FP8Args(fp8=not options.bf16_baseline, fp8_backend=options.backend, fp8_recipe=options.recipe)

    fp8ref_logger = logging.getLogger("fp8ref")
    fp8ref_logger.addHandler(logging.StreamHandler(sys.stdout))
    fp8ref_logger.setLevel(logging.INFO)
    mode = "bf16 baseline (FP8 off)" if options.bf16_baseline else f"FP8 (backend {options.backend})"
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
        )
        dataset = ArithmeticSequences(
            count=max(64, options.steps * options.batch_size), seq_len=options.seq_len, seed=1
        )
        trainer = Trainer(
            model=tiny_llama(options.layers, options.seq_len, options.seed),
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
