"""The figures (matplotlib, imported only here, on its Agg backend): speedup over bf16 against FLOPs per step with
the roofline bound (:func:`plot_speedup`), and achieved TFLOP/s against FLOPs per step (:func:`plot_tflops`); one
colour per variant in every figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fp8ref import roofline

from .rows import Row, variant_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _color(variant: str) -> str:
    """The same colour for a variant in every figure."""
    palette = ("#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
    return palette[min(variant_key(variant)[0], len(palette) - 1)]


def _figure() -> tuple[Figure, Axes]:
    """A new figure of the report's size, drawn with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(10, 6), dpi=110)


def _series(rows: Sequence[Row]) -> list[tuple[str, bool, list[Row]]]:
    """Each (variant, compiled) pair of ``rows`` in variant order, eager first, with its rows by FLOPs."""
    pairs = sorted(
        {(row.result.variant, row.result.compiled) for row in rows}, key=lambda vc: (variant_key(vc[0]), vc[1])
    )
    return [
        (
            variant,
            compiled,
            sorted(
                (row for row in rows if (row.result.variant, row.result.compiled) == (variant, compiled)),
                key=lambda row: row.result.flops,
            ),
        )
        for variant, compiled in pairs
    ]


def _save(fig: Figure, ax: Axes, path: Path) -> None:
    """The legend to the right of the axes, and the figure written to ``path`` and closed."""
    import matplotlib.pyplot as plt

    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def plot_speedup(rows: Sequence[Row], path: Path, gpu: roofline.GPUSpec) -> bool:
    """Speedup over bf16 against FLOPs per step, one series per FP8 variant, with the roofline bound.

    Plots the linear-layer results (all results when there are none). Returns False when no FP8
    result has a bf16 baseline to compare with (nothing to draw).
    """
    linear = [row for row in rows if row.result.bench == "linear"]
    chosen = linear or list(rows)
    points = [row for row in chosen if row.result.variant != "bf16" and row.speedup is not None]
    if not points:
        return False
    # a file with both GPU results and the CPU smoke set (``pytest bench`` on a GPU machine): plot the GPU
    points = [row for row in points if row.result.device == "cuda"] or points
    on_cpu = any(row.result.device != "cuda" for row in points)
    fig, ax = _figure()
    for variant, compiled, mine in _series(points):
        color = _color(variant)
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
    _save(fig, ax, path)
    return True


def plot_tflops(rows: Sequence[Row], path: Path, gpu: roofline.GPUSpec) -> bool:
    """Achieved TFLOP/s against FLOPs per step, one series per variant, with the peak rates drawn on GPUs."""
    linear = [row for row in rows if row.result.bench == "linear"] or list(rows)
    linear = [row for row in linear if row.result.device == "cuda"] or linear
    if not linear:
        return False
    fig, ax = _figure()
    for variant, compiled, mine in _series(linear):
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
    _save(fig, ax, path)
    return True
