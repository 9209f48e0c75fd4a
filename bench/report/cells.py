"""The cells of the report's table: times, speedups and shares of the bound, as the Markdown prints them."""

from __future__ import annotations

from .rows import Row


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def fmt_ratio(value: float | None) -> str:
    """A speedup: two decimals, or two significant digits below 0.1 (so 0.004x does not print as 0.00x)."""
    if value is None:
        return "—"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def speedup_cell(row: Row | None) -> str:
    if row is None:
        return "—"
    if row.result.variant == "bf16":
        return "1 (baseline)"
    if row.baseline_s is None:
        return "— (no bf16 result)"
    return fmt_ratio(row.speedup)


def share_cell(row: Row | None, bound: float | None) -> str:
    if row is None or row.result.variant == "bf16":
        return "—"
    if not row.share_computed:
        return "n/a (CPU)"
    if bound is None or row.speedup is None:
        return "—"
    return f"{row.speedup / bound:.0%}"
