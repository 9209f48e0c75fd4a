"""Turn a pytest-benchmark JSON of the fp8ref bench into ``report.md`` and figures.

Usage::

    python -m bench.report RESULTS.json --out DIR [--gpu h100-sxm|h100-pcie|h200]
                           [--bf16-tflops X] [--fp8-tflops Y] [--hbm-tbps Z]

For each benchmark (linear layer, decoder block, Llama step) and shape, the report gives, for each variant,
its eager and its compiled run side by side (``FP8REF_BENCH_COMPILE``): median time, speedup over the bf16
run of the same mode, achieved TFLOP/s, and for linear layers both roofline bounds of :mod:`fp8ref.roofline`
(eager: torchao's separate cast kernels; compiled: fused casts) and the share of each reached. Results from
a CPU are labelled as such: CPU times say nothing about GPU speed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fp8ref import roofline

from .markdown import render_markdown
from .plots import plot_speedup, plot_tflops
from .results import ReportError, Result, load_results
from .rows import build_rows


def _choose_gpu(args: argparse.Namespace, results: Sequence[Result]) -> tuple[roofline.GPUSpec, bool]:
    """The spec for the bound, and whether it was given explicitly."""
    if args.gpu:
        base = roofline.get_gpu(args.gpu)
        explicit = True
    else:
        found = {roofline.gpu_for_device_name(r.device_name) for r in results if r.device == "cuda"}
        found.discard(None)
        base = found.pop() if len(found) == 1 else roofline.GPUS["h100-sxm"]
        explicit = False
    spec = base.with_ceilings(bf16_tflops=args.bf16_tflops, fp8_tflops=args.fp8_tflops, hbm_tbps=args.hbm_tbps)
    return spec, explicit or spec is not base


def make_report(results_path: Path, out_dir: Path, args: argparse.Namespace | None = None) -> Path:
    """Write ``report.md`` and the figures into ``out_dir``; return the path of ``report.md``."""
    args = args or build_parser().parse_args([str(results_path), "--out", str(out_dir)])
    results, meta = load_results(results_path)
    gpu, explicit = _choose_gpu(args, results)
    rows = build_rows(results, gpu, explicit)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    if plot_speedup(rows, out_dir / "speedup_vs_flops.png", gpu):
        figures.append("speedup_vs_flops.png")
    if plot_tflops(rows, out_dir / "tflops_vs_flops.png", gpu):
        figures.append("tflops_vs_flops.png")
    report = out_dir / "report.md"
    report.write_text(render_markdown(rows, meta, results_path, gpu, figures, explicit), encoding="utf-8")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "results", type=Path, help="pytest-benchmark JSON (--benchmark-json or a --benchmark-save file)"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for report.md and the PNG figures")
    parser.add_argument(
        "--gpu",
        choices=[*sorted(roofline.GPUS), "h100"],
        default=None,
        help="GPU of the roofline bound (default: from the results' device name; H100 SXM for CPU runs)",
    )
    parser.add_argument("--bf16-tflops", type=float, default=None, help="measured bf16 GEMM ceiling, TFLOP/s")
    parser.add_argument("--fp8-tflops", type=float, default=None, help="measured fp8 GEMM ceiling, TFLOP/s")
    parser.add_argument("--hbm-tbps", type=float, default=None, help="measured memory bandwidth, TB/s")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        report = make_report(args.results, args.out, args)
    except (ReportError, ValueError) as exc:
        sys.stderr.write(f"bench.report: error: {exc}\n")
        return 2
    sys.stdout.write(f"wrote {report} and its figures in {args.out}\n")
    return 0
