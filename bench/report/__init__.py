"""The bench report, ``python -m bench.report RESULTS.json --out DIR`` (:mod:`.cli`): ``results`` (the
pytest-benchmark JSON read), ``rows`` (each result beside its bf16 baseline and roofline bounds), ``cells`` and
``markdown`` (``report.md``), ``plots`` (the PNG figures)."""

from .cells import fmt_ratio as _fmt_ratio
from .cli import build_parser, main, make_report
from .markdown import BENCH_TITLES, CPU_WARNING, render_markdown
from .plots import plot_speedup, plot_tflops
from .results import ReportError, Result, load_results
from .rows import VARIANT_ORDER, Line, Row, build_lines, build_rows

__all__ = [
    "BENCH_TITLES",
    "CPU_WARNING",
    "VARIANT_ORDER",
    "Line",
    "ReportError",
    "Result",
    "Row",
    "_fmt_ratio",
    "build_lines",
    "build_parser",
    "build_rows",
    "load_results",
    "main",
    "make_report",
    "plot_speedup",
    "plot_tflops",
    "render_markdown",
]
