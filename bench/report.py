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
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fp8ref import roofline

VARIANT_ORDER = ("bf16", "torchao-tensorwise", "torchao-rowwise", "torchao-rowwise_with_gw_hp", "te-delayed-hybrid")
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


class ReportError(Exception):
    """A results file that cannot be reported on; the message says why and what to do."""


@dataclass(frozen=True)
class Result:
    """One benchmark of the JSON, with the fields of its ``extra_info``."""

    name: str
    bench: str
    variant: str
    recipe: str | None
    shape: str
    m: int | None
    k: int | None
    n: int | None
    flops: float
    median_s: float
    device: str
    device_name: str
    compute_capability: str | None
    compiled: bool
    emulate: bool


@dataclass(frozen=True)
class Row:
    """One line of the report: a result next to its bf16 baseline and roofline bound."""

    result: Result
    baseline_s: float | None
    bound: float | None
    share_computed: bool

    @property
    def speedup(self) -> float | None:
        if self.baseline_s is None:
            return None
        return self.baseline_s / self.result.median_s

    @property
    def tflops(self) -> float:
        return self.result.flops / self.result.median_s / 1e12

    @property
    def share(self) -> float | None:
        if not self.share_computed or self.bound is None or self.speedup is None:
            return None
        return self.speedup / self.bound


def load_results(path: Path) -> tuple[list[Result], dict[str, Any]]:
    """Read a pytest-benchmark JSON; raise :class:`ReportError` with the reason when it is unusable."""
    if not path.exists():
        raise ReportError(f"results file not found: {path} (write one with: pytest bench --benchmark-json {path})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(
            f"{path} is not a pytest-benchmark JSON (no 'benchmarks' list); "
            "produce one with: pytest bench --benchmark-json FILE"
        )
    results: list[Result] = []
    foreign = 0
    for entry in data["benchmarks"]:
        info = entry.get("extra_info") if isinstance(entry, dict) else None
        if not isinstance(info, dict) or "variant" not in info or "flops" not in info:
            foreign += 1
            continue
        try:
            median = float(entry["stats"]["median"])
            results.append(
                Result(
                    name=str(entry.get("name", "?")),
                    bench=str(info.get("bench", "other")),
                    variant=str(info["variant"]),
                    recipe=info.get("recipe"),
                    shape=str(info.get("shape", entry.get("name", "?"))),
                    m=info.get("m"),
                    k=info.get("k"),
                    n=info.get("n"),
                    flops=float(info["flops"]),
                    median_s=median,
                    device=str(info.get("device", "unknown")),
                    device_name=str(info.get("device_name", "unknown")),
                    compute_capability=info.get("compute_capability"),
                    compiled=bool(info.get("compile", False)),
                    emulate=bool(info.get("emulate", False)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{path}: benchmark {entry.get('name', '?')!r} lacks a usable median: {exc}") from exc
        if not (median > 0 and math.isfinite(median)):
            raise ReportError(f"{path}: benchmark {entry.get('name', '?')!r} has a median of {median}")
    if not results:
        raise ReportError(
            f"{path} holds {len(data['benchmarks'])} benchmark(s) but none from the fp8ref bench "
            "(no extra_info 'variant' and 'flops'); run: pytest bench --benchmark-json FILE"
        )
    meta = {k: data.get(k) for k in ("datetime", "version", "machine_info", "commit_info")}
    meta["foreign"] = foreign
    return results, meta


def _variant_key(variant: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def _color(variant: str) -> str:
    """The same colour for a variant in every figure."""
    palette = ("#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
    return palette[min(_variant_key(variant)[0], len(palette) - 1)]


def _mode(compiled: bool) -> str:
    return "compiled" if compiled else "eager"


def _roofline_recipe(result: Result) -> str | None:
    if result.recipe in roofline.RECIPES:
        return result.recipe
    return None


def build_rows(results: Sequence[Result], gpu: roofline.GPUSpec, explicit: bool = False) -> list[Row]:
    """Pair each result with the bf16 result of the same bench, shape and compile mode.

    The roofline bound is that of the result's mode (eager or compiled). It uses ``gpu`` when ``explicit``;
    otherwise the GPU named by each result's device (``gpu`` when the device is unknown or a CPU). A share of
    the bound is computed only for results measured on a CUDA device.
    """
    baselines = {(r.bench, r.shape, r.compiled): r.median_s for r in results if r.variant == "bf16"}
    rows: list[Row] = []
    for r in results:
        spec = gpu if explicit else (roofline.gpu_for_device_name(r.device_name) or gpu)
        bound: float | None = None
        recipe = _roofline_recipe(r)
        if r.bench == "linear" and recipe and r.m and r.k and r.n:
            bound = roofline.predict(int(r.m), int(r.k), int(r.n), recipe, spec, _mode(r.compiled)).speedup
        rows.append(Row(r, baselines.get((r.bench, r.shape, r.compiled)), bound, r.device == "cuda"))
    rows.sort(
        key=lambda row: (
            row.result.bench,
            row.result.flops,
            row.result.shape,
            row.result.compiled,
            _variant_key(row.result.variant),
        )
    )
    return rows


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def _fmt_ratio(value: float | None) -> str:
    """A speedup: two decimals, or two significant digits below 0.1 (so 0.004x does not print as 0.00x)."""
    if value is None:
        return "—"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


@dataclass(frozen=True)
class Line:
    """One line of the report's table: a variant at a shape, its eager and compiled runs side by side."""

    eager: Row | None
    compiled: Row | None
    #: the roofline bounds of both modes (linear layers with a modelled recipe), measured or not
    bounds: dict[str, float]

    @property
    def result(self) -> Result:
        row = self.eager or self.compiled
        assert row is not None
        return row.result

    def row(self, mode: str) -> Row | None:
        return self.eager if mode == "eager" else self.compiled


def build_lines(rows: Sequence[Row], gpu: roofline.GPUSpec, explicit: bool = False) -> list[Line]:
    """Pair each variant's eager and compiled rows of the same bench and shape, in the order of ``rows``."""
    paired: dict[tuple[str, str, str], dict[bool, Row]] = {}
    for row in rows:
        r = row.result
        paired.setdefault((r.bench, r.shape, r.variant), {})[r.compiled] = row
    lines = []
    for modes in paired.values():
        first = next(iter(modes.values())).result
        spec = gpu if explicit else (roofline.gpu_for_device_name(first.device_name) or gpu)
        recipe = _roofline_recipe(first)
        bounds: dict[str, float] = {}
        if first.bench == "linear" and recipe and first.m and first.k and first.n:
            m, k, n = int(first.m), int(first.k), int(first.n)
            bounds = {mode: roofline.predict(m, k, n, recipe, spec, mode).speedup for mode in roofline.MODES}
        lines.append(Line(modes.get(False), modes.get(True), bounds))
    return lines


def _speedup_cell(row: Row | None) -> str:
    if row is None:
        return "—"
    if row.result.variant == "bf16":
        return "1 (baseline)"
    if row.baseline_s is None:
        return "— (no bf16 result)"
    return _fmt_ratio(row.speedup)


def _share_cell(row: Row | None, bound: float | None) -> str:
    if row is None or row.result.variant == "bf16":
        return "—"
    if not row.share_computed:
        return "n/a (CPU)"
    if bound is None or row.speedup is None:
        return "—"
    return f"{row.speedup / bound:.0%}"


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
    modes = sorted({_mode(r.compiled) for r in results})
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
            medians = [_fmt_time(row.result.median_s) if row else "—" for row in (line.eager, line.compiled)]
            tflops = " / ".join(f"{row.tflops:.3g}" if row else "—" for row in (line.eager, line.compiled))
            shares = " / ".join(_share_cell(line.row(m), line.bounds.get(m)) for m in ("eager", "compiled"))
            if r.variant == "bf16":
                shares = "—"
            lines.append(
                f"| {r.shape} | {dims} | {r.flops / 1e9:.3g} | {variant} | {medians[0]} | {_speedup_cell(line.eager)} "
                f"| {medians[1]} | {_speedup_cell(line.compiled)} | {tflops} "
                f"| {_fmt_ratio(line.bounds.get('eager'))} | {_fmt_ratio(line.bounds.get('compiled'))} "
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


def plot_speedup(rows: Sequence[Row], path: Path, gpu: roofline.GPUSpec) -> bool:
    """Speedup over bf16 against FLOPs per step, one series per FP8 variant, with the roofline bound.

    Plots the linear-layer results (all results when there are none). Returns False when no FP8
    result has a bf16 baseline to compare with (nothing to draw).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    linear = [row for row in rows if row.result.bench == "linear"]
    chosen = linear or list(rows)
    points = [row for row in chosen if row.result.variant != "bf16" and row.speedup is not None]
    if not points:
        return False
    # a file with both GPU results and the CPU smoke set (``pytest bench`` on a GPU machine): plot the GPU
    points = [row for row in points if row.result.device == "cuda"] or points
    on_cpu = any(row.result.device != "cuda" for row in points)
    fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
    series = sorted(
        {(row.result.variant, row.result.compiled) for row in points}, key=lambda vc: (_variant_key(vc[0]), vc[1])
    )
    for variant, compiled in series:
        color = _color(variant)
        mine = sorted(
            (row for row in points if (row.result.variant, row.result.compiled) == (variant, compiled)),
            key=lambda row: row.result.flops,
        )
        label = variant + (" (compiled)" if compiled else "")
        xs = [row.result.flops for row in mine]
        ax.plot(
            xs,
            [row.speedup for row in mine],
            marker="s" if compiled else "o",
            linestyle="--" if compiled else "-",
            color=color,
            label=f"{label}: measured",
        )
        bounded = [row for row in mine if row.bound is not None]
        if bounded:
            ax.plot(
                [row.result.flops for row in bounded],
                [row.bound for row in bounded],
                marker="_",
                markersize=14,
                linestyle=":",
                color=color,
                label=f"{label}: roofline bound ({gpu.name})",
            )
    ax.axhline(1.0, color="black", linewidth=1, label="bf16 (break-even)")
    ax.axhline(
        gpu.fp8_flops / gpu.bf16_flops,
        color="grey",
        linewidth=1,
        linestyle="--",
        label="fp8 / bf16 peak ratio (GEMM bound)",
    )
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per training step (forward + backward)" + (", linear layer" if linear else ""))
    ax.set_ylabel("speedup over bf16 (bf16 time / FP8 time)")
    device = points[0].result.device_name
    title = f"FP8 speedup over bf16 — {device}"
    if on_cpu:
        title += f"\nCPU run: says nothing about GPU speed (dotted: roofline bound for {gpu.name})"
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return True


def plot_tflops(rows: Sequence[Row], path: Path, gpu: roofline.GPUSpec) -> bool:
    """Achieved TFLOP/s against FLOPs per step, one series per variant, with the peak rates drawn on GPUs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    linear = [row for row in rows if row.result.bench == "linear"] or list(rows)
    linear = [row for row in linear if row.result.device == "cuda"] or linear
    if not linear:
        return False
    fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
    for variant, compiled in sorted(
        {(row.result.variant, row.result.compiled) for row in linear}, key=lambda vc: (_variant_key(vc[0]), vc[1])
    ):
        mine = sorted(
            (row for row in linear if (row.result.variant, row.result.compiled) == (variant, compiled)),
            key=lambda row: row.result.flops,
        )
        ax.plot(
            [row.result.flops for row in mine],
            [row.tflops for row in mine],
            marker="o",
            label=variant + (" (compiled)" if compiled else ""),
        )
    if all(row.result.device == "cuda" for row in linear):
        ax.axhline(gpu.bf16_flops / 1e12, color="black", linestyle="--", linewidth=1, label=f"{gpu.name} bf16 peak")
        ax.axhline(gpu.fp8_flops / 1e12, color="grey", linestyle="--", linewidth=1, label=f"{gpu.name} fp8 peak")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs per training step (forward + backward)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(f"Achieved throughput — {linear[0].result.device_name}", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return True


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


if __name__ == "__main__":
    raise SystemExit(main())
