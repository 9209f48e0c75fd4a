"""Rows and bounds: each result next to the bf16 result of the same bench, shape and compile mode and to its
roofline bound (:class:`Row`, :func:`build_rows`), and a variant's eager and compiled rows side by side with the
bounds of both modes (:class:`Line`, :func:`build_lines`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fp8ref import roofline

from .results import Result

VARIANT_ORDER = ("bf16", "torchao-tensorwise", "torchao-rowwise", "torchao-rowwise_with_gw_hp", "te-delayed-hybrid")


def variant_key(variant: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def mode_name(compiled: bool) -> str:
    return "compiled" if compiled else "eager"


def bound_of(result: Result, gpu: roofline.GPUSpec, explicit: bool, mode: str) -> float | None:
    """The roofline bound of ``result`` in ``mode``: linear layers with a modelled recipe only, else None.

    It uses ``gpu`` when ``explicit``; otherwise the GPU named by the result's device (``gpu`` when the device is
    unknown or a CPU).
    """
    recipe = result.recipe if result.recipe in roofline.RECIPES else None
    if result.bench != "linear" or not recipe or not (result.m and result.k and result.n):
        return None
    spec = gpu if explicit else (roofline.gpu_for_device_name(result.device_name) or gpu)
    return roofline.predict(int(result.m), int(result.k), int(result.n), recipe, spec, mode).speedup


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


def build_rows(results: Sequence[Result], gpu: roofline.GPUSpec, explicit: bool = False) -> list[Row]:
    """Pair each result with the bf16 result of the same bench, shape and compile mode.

    The roofline bound is that of the result's mode (eager or compiled), on the GPU :func:`bound_of` picks. A
    share of the bound is computed only for results measured on a CUDA device.
    """
    baselines = {(r.bench, r.shape, r.compiled): r.median_s for r in results if r.variant == "bf16"}
    rows = [
        Row(
            r,
            baselines.get((r.bench, r.shape, r.compiled)),
            bound_of(r, gpu, explicit, mode_name(r.compiled)),
            r.device == "cuda",
        )
        for r in results
    ]
    rows.sort(
        key=lambda row: (
            row.result.bench,
            row.result.flops,
            row.result.shape,
            row.result.compiled,
            variant_key(row.result.variant),
        )
    )
    return rows


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
        bounds = {mode: bound_of(first, gpu, explicit, mode) for mode in roofline.MODES}
        lines.append(Line(modes.get(False), modes.get(True), {m: b for m, b in bounds.items() if b is not None}))
    return lines
