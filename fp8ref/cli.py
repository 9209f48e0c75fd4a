"""The ``fp8ref`` command line: ``doctor``, ``plan``, ``preflight`` and ``check``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fp8ref.config import VALID_RECIPES
from fp8ref.errors import FP8ConfigError, FP8Error

if TYPE_CHECKING:
    from fp8ref.roofline import GPUSpec


def _doctor(args: argparse.Namespace) -> int:
    from fp8ref.doctor import run_doctor

    report = run_doctor()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.any_usable else 1


def _positive_int(option: str, text: str | None) -> int | None:
    """``text`` as a positive integer; an ``FP8ConfigError`` naming ``option`` otherwise."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise FP8ConfigError(f"{option} must be a positive integer, got {text!r}")
    return value


def _positive_float(option: str, text: str | None) -> float | None:
    """``text`` as a positive finite number; an ``FP8ConfigError`` naming ``option`` otherwise."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise FP8ConfigError(f"{option} must be a positive number, got {text!r}")
    return value


def _plan_gpu(args: argparse.Namespace) -> GPUSpec:
    """The GPU of the roofline bound, with the measured rates the options give."""
    from fp8ref.roofline import GPUS, get_gpu

    try:
        spec = get_gpu(args.gpu)
    except ValueError:
        raise FP8ConfigError(f"--gpu {args.gpu!r} is not a known GPU; known: {', '.join(sorted(GPUS))}") from None
    bf16 = _positive_float("--bf16-tflops", args.bf16_tflops)
    fp8 = _positive_float("--fp8-tflops", args.fp8_tflops)
    hbm = _positive_float("--hbm-tbps", args.hbm_tbps)
    if bf16 is not None:
        spec = spec.at_bf16_rate(bf16)
    return spec.with_ceilings(fp8_tflops=fp8, hbm_tbps=hbm)


def _plan(args: argparse.Namespace) -> int:
    from fp8ref.plan import plan_config

    if args.eager and args.compiled:
        raise FP8ConfigError("--eager and --compiled exclude each other: give one (the default is --compiled)")
    if args.recipe.strip().lower() not in VALID_RECIPES:
        raise FP8ConfigError(f"--recipe {args.recipe!r} is not a torchao recipe; valid: {', '.join(VALID_RECIPES)}")
    started = time.perf_counter()
    plan = plan_config(
        args.config,
        recipe=args.recipe.strip().lower(),
        size_aware=args.auto_filter,
        tokens=_positive_int("--tokens", args.tokens) or 8192,
        gpu=_plan_gpu(args),
        lora_rank=_positive_int("--lora-rank", args.lora_rank),
        lora_targets=args.lora_targets.split(",") if args.lora_targets else None,
        mode="eager" if args.eager else "compiled",
    )
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(plan.render())
        print(f"planned in {time.perf_counter() - started:.2f} s")
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from fp8ref.preflight import preflight

    if not args.verbose:  # the clients log what they do at INFO, and TrainingArguments warn about this machine
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        # transformers' own deprecation notes (building the meta-device model) are not about the user's config
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")  # LLaMA-Factory reads it when it sets up its logger
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the client's own logs (LLaMA-Factory's go to stdout) stay apart
        report = preflight(
            args.config,
            args.overrides,
            helpers=args.helpers,
            gpu=_plan_gpu(args),
            model=args.model,
            seq_len=_positive_int("--seq-len", args.seq_len),
            lora_rank=_positive_int("--lora-rank", args.lora_rank),
            lora_targets=args.lora_targets.split(",") if args.lora_targets else None,
            accelerate_config=args.accelerate_config,
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render())
        print(f"preflight in {time.perf_counter() - started:.2f} s")
    return report.exit_status


def _check(args: argparse.Namespace) -> int:
    from fp8ref_conformance.runner import run_check

    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:  # argparse.REMAINDER keeps the separator; pytest would take what follows as paths
        extra = extra[1:]
    return int(
        run_check(
            args.impl or ["fp8ref"],
            gpu=args.gpu,
            report=args.report,
            extra_args=extra,
            xfails=args.xfails,
            markdown=args.markdown,
            png=args.png,
            write_xfails=args.write_xfails,
            workers=args.workers,
        )
    )


def _gpu_clauses() -> str:
    """The suite's GPU clauses as a range of ids, from its clause table (a light import: no torch)."""
    from fp8ref_conformance import clauses

    return clauses.range_text(clauses.gpu_clauses())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fp8ref", description="Is FP8 training really on, configured right, and does it pay?"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO, and show third-party import notices")
    commands = parser.add_subparsers(dest="command", required=True)

    doctor = commands.add_parser("doctor", help="versions, GPU, and whether each FP8 backend works here")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(run=_doctor)

    plan = commands.add_parser("plan", help="which linear layers of a model convert to FP8, and why")
    # Values are checked in _plan, so that a bad one gives one line naming the option (exit status 2).
    plan.add_argument("--config", help="a transformers config.json (default: an embedded tiny Llama)")
    plan.add_argument(
        "--recipe", default="rowwise", metavar="|".join(VALID_RECIPES), help="torchao recipe (default rowwise)"
    )
    plan.add_argument(
        "--auto-filter", action="store_true", help="also skip layers too small to gain from FP8 (torchao thresholds)"
    )
    plan.add_argument("--tokens", default="8192", metavar="M", help="tokens per step for the speedup estimate")
    plan.add_argument("--gpu", default="h100-sxm", help="GPU of the roofline estimate (h100-sxm, h100-pcie, h200)")
    plan.add_argument(
        "--compiled",
        action="store_true",
        help="the FP8 layers run under torch.compile, which fuses torchao's casts (the default)",
    )
    plan.add_argument(
        "--eager", action="store_true", help="the FP8 layers run eagerly: torchao's casts are separate kernels"
    )
    plan.add_argument(
        "--bf16-tflops",
        metavar="R",
        help="measured bf16 rate of your baseline, TFLOP/s: the bound then holds for it (float8 at the peak ratio)",
    )
    plan.add_argument("--fp8-tflops", metavar="R", help="measured float8 GEMM ceiling, TFLOP/s")
    plan.add_argument("--hbm-tbps", metavar="B", help="measured memory bandwidth, TB/s")
    plan.add_argument(
        "--lora-rank", metavar="R", help="plan a LoRA run of this rank: base layers convert, adapters stay in bf16"
    )
    plan.add_argument(
        "--lora-targets",
        help="comma-separated layer names LoRA wraps (q_proj,v_proj); default 'all': every linear layer but heads",
    )
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(run=_plan)

    preflight = commands.add_parser(
        "preflight",
        help="before the run: will FP8 be on for this training config, with what, and does it pay",
        description="Run the client's own FP8 calls and build the Accelerator its Trainer would build, on a model "
        "without weights, and say what that accelerator will do. Exit status 0: FP8 on and the bound above 1 in "
        "the configured mode; 1 otherwise; 2 for bad input.",
    )
    preflight.add_argument(
        "config", help="a LLaMA-Factory YAML, a TrainingArguments JSON file, or key=value TrainingArguments"
    )
    preflight.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the config's arguments")
    preflight.add_argument(
        "--model", help="the architecture: a local model folder or config.json (default: the config's model)"
    )
    preflight.add_argument(
        "--helpers",
        default="fp8ref",
        help="the FP8 helpers the run uses: fp8ref (default) or a module, e.g. llamafactory.train.fp8_utils",
    )
    preflight.add_argument("--accelerate-config", metavar="FILE", help="the accelerate config file of the launch")
    preflight.add_argument(
        "--seq-len", metavar="N", help="sequence length (default: LLaMA-Factory's cutoff_len, else 2048)"
    )
    preflight.add_argument(
        "--lora-rank", metavar="R", help="LoRA of this rank (default: the LLaMA-Factory config's finetuning_type)"
    )
    preflight.add_argument("--lora-targets", help="comma-separated layer names LoRA wraps (default 'all')")
    preflight.add_argument("--gpu", default="h100-sxm", help="GPU of the roofline bound (h100-sxm, h100-pcie, h200)")
    preflight.set_defaults(bf16_tflops=None, fp8_tflops=None, hbm_tbps=None)
    preflight.add_argument("--json", action="store_true", help="machine-readable output")
    preflight.set_defaults(run=_preflight)

    check = commands.add_parser("check", help="run the conformance suite against an implementation")
    check.add_argument(
        "--impl",
        action="append",
        help="module offering the five functions (default fp8ref); repeat it to compare implementations",
    )
    check.add_argument(
        "--gpu", action="store_true", help=f"run the GPU clauses ({_gpu_clauses()}) instead of the CPU ones"
    )
    check.add_argument("--report", help="write the JSON clause report here")
    check.add_argument("--xfails", metavar="FILE", help="known-failures file: listed clauses count as 'known'")
    check.add_argument(
        "--write-xfails", metavar="FILE", help="write the clauses that fail today as a known-failures file"
    )
    check.add_argument("--markdown", metavar="FILE", help="write the table as Markdown")
    check.add_argument("--png", metavar="FILE", help="draw the table as a PNG picture (needs matplotlib)")
    check.add_argument(
        "-n",
        "--workers",
        type=int,
        default=None,
        help="pytest-xdist worker processes (default 0: one process, the suite's child processes beside it)",
    )
    check.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")
    check.set_defaults(run=_check)
    return parser


#: Loggers that print notices at import time which read like errors in a terminal: torchao's
#: "Failed to load ..._C_mxfp8...so" and "Detected no triton" (CUDA-only extensions, harmless on a CPU),
#: torch's ``_pytree`` deprecation notices. Quieted in the command line only:
#: the library and users' training scripts keep them, and ``-v`` shows them here too.
IMPORT_NOISE_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_import_noise() -> None:
    """Raise the import-noise loggers to ERROR before anything imports torchao or transformers."""
    for name in IMPORT_NOISE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        quiet_import_noise()
    try:
        return int(args.run(args))
    except FP8Error as exc:
        print(f"fp8ref {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
