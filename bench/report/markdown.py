"""``report.md``: the devices and modes measured, the CPU warning, how to read the numbers, one table per
benchmark (a line per variant and shape, :mod:`.rows`, in cells of :mod:`.cells`) and the figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fp8ref import roofline

from .cells import fmt_ratio, fmt_time, share_cell, speedup_cell
from .rows import Row, build_lines, mode_name

BENCH_TITLES = {
    "linear": "Linear layer, forward + backward",
    "block": "Llama-style decoder block, forward + backward",
    "llama_step": "Tiny Llama training step through accelerate.prepare",
}
CPU_WARNING = (
    "**These results come from a CPU.** CPU times say nothing about GPU speed: the CPU has no float8 "
    "tensor cores, and its float8 matmul (`torch._scaled_mm` on the CPU, or the emulation) is a slow "
    "reference path. They prove that the harness runs, nothing more. The roofline bound shown is the "
    "model's prediction for {gpu} at each shape, for reference; no share of it is computed."
)


def render_markdown(
    rows: Sequence[Row],
    meta: dict[str, Any],
    source: Path,
    gpu: roofline.GPUSpec,
    figures: Sequence[str],
    explicit: bool = False,
) -> str:
    """``report.md``: ``explicit`` when ``gpu`` was chosen on the command line (else each result's device)."""
    results = [row.result for row in rows]
    devices = sorted({(r.device, r.device_name, r.compute_capability or "—") for r in results})
    on_cpu = any(r.device != "cuda" for r in results)
    lines = ["# FP8 benchmark report", ""]
    lines.append(f"Results: `{source}`" + (f", run {meta['datetime']}" if meta.get("datetime") else "") + ".")
    for device, name, cap in devices:
        lines.append(f"Device: {name} ({device}, compute capability {cap}).")
    modes = sorted({mode_name(r.compiled) for r in results})
    lines.append(f"Modes measured: {', '.join(modes)} (FP8REF_BENCH_COMPILE=1 runs both).")
    lines.append("")
    if on_cpu:
        warning = CPU_WARNING.format(gpu=gpu.name)
        if any(r.device == "cuda" for r in results):
            warning = "Rows whose device is a CPU are the smoke set. " + warning.replace("These results", "They")
        lines += ["> " + warning, ""]
    if any(r.emulate for r in results):
        lines += ["Some FP8 results use torchao's `emulate=True` (marked *emulated*): float8 is simulated.", ""]
    lines += [
        "Each variant's eager and compiled (`torch.compile`) runs stand side by side. Speedup is the bf16 median "
        "time over the variant's median time (same benchmark, shape and compile mode). Achieved TFLOP/s counts the "
        "step's FLOPs (three GEMMs of 2·M·K·N per linear layer, plus attention for blocks) over the median time. "
        "The roofline bounds (linear layers only) are `fp8ref.roofline`'s predicted speedups in each mode: GEMMs at "
        "peak rate and float8 casts at memory bandwidth, eager counting every pass of torchao's separate cast "
        f"kernels, compiled the fused casts; with {gpu.name} at {gpu.bf16_flops / 1e12:.0f} bf16 / "
        f"{gpu.fp8_flops / 1e12:.0f} fp8 TFLOP/s and {gpu.hbm_bytes_per_s / 1e12:.2f} TB/s ({gpu.source}). "
        "Share of bound = speedup / the bound of the same mode. torchao needs torch.compile: its eager bound is "
        "far below its compiled one.",
        "",
    ]
    table = build_lines(rows, gpu, explicit)
    for bench in sorted(
        {r.bench for r in results},
        key=lambda b: list(BENCH_TITLES).index(b) if b in BENCH_TITLES else len(BENCH_TITLES),
    ):
        lines += [f"## {BENCH_TITLES.get(bench, bench)}", ""]
        lines.append(
            "| shape | MxKxN or tokens | GFLOP/step | variant | eager: median | eager: speedup "
            "| compiled: median | compiled: speedup | achieved TFLOP/s (eager / compiled) "
            f"| eager bound ({gpu.name}) | compiled bound ({gpu.name}) | share of bound (eager / compiled) |"
        )
        lines.append("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for line in table:
            r = line.result
            if r.bench != bench:
                continue
            dims = f"{r.m}x{r.k}x{r.n}" if r.k and r.n else f"{r.m} tokens"
            variant = r.variant + (" *emulated*" if r.emulate else "")
            medians = [fmt_time(row.result.median_s) if row else "—" for row in (line.eager, line.compiled)]
            tflops = " / ".join(f"{row.tflops:.3g}" if row else "—" for row in (line.eager, line.compiled))
            shares = " / ".join(share_cell(line.row(m), line.bounds.get(m)) for m in ("eager", "compiled"))
            if r.variant == "bf16":
                shares = "—"
            lines.append(
                f"| {r.shape} | {dims} | {r.flops / 1e9:.3g} | {variant} | {medians[0]} | {speedup_cell(line.eager)} "
                f"| {medians[1]} | {speedup_cell(line.compiled)} | {tflops} "
                f"| {fmt_ratio(line.bounds.get('eager'))} | {fmt_ratio(line.bounds.get('compiled'))} "
                f"| {shares} |"
            )
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({name})" for name in figures]
        lines.append("")
    if meta.get("foreign"):
        lines += [f"{meta['foreign']} benchmark(s) without fp8ref bench extra_info were left out.", ""]
    return "\n".join(lines)
