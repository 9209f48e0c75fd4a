"""The table across implementations as a PNG (matplotlib, imported only here): clauses down, implementations
across, one coloured cell per clause with its label (``blocked by C6`` included); an implementation whose run
wrote no report is a grey column that says it did not run, with the reason under the table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .render import NOT_RUN, clauses_of, outcome_of

#: Colours of the outcomes in the picture and the order of its legend.
OUTCOME_COLOURS = {
    "passed": "#2e9d4f",
    "failed": "#d62f2f",
    "blocked": "#4a7fd4",
    "known": "#f0a020",
    "missing": "#8e5bc4",
    "skipped": "#b0b0b0",
    NOT_RUN: "#606060",
}


def _colour(label: str) -> str:
    return OUTCOME_COLOURS.get(label.split(" ", 1)[0] if label != NOT_RUN else label, "#ffffff")


def draw_table(
    reports: Mapping[str, Mapping[str, Any] | None], path: str | Path, reasons: Mapping[str, str] | None = None
) -> Path:
    """Write the table of ``reports`` (``None``: the run wrote no report) to ``path`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    names = list(reports)
    clauses = clauses_of(reports)
    not_run = [n for n in names if reports[n] is None]
    fig_w = 2.2 + 2.2 * len(names)
    fig_h = 1.8 + 0.28 * len(clauses) + 0.25 * len(not_run)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=110)
    for row, clause in enumerate(clauses):
        for col, name in enumerate(names):
            label = outcome_of(reports[name], clause)
            ax.add_patch(Rectangle((col, row), 1, 1, facecolor=_colour(label), edgecolor="white", linewidth=1.5))
            text_colour = "white" if label == NOT_RUN else "black"
            ax.text(col + 0.5, row + 0.5, label, ha="center", va="center", fontsize=7, color=text_colour)
    ax.set_xlim(0, len(names))
    ax.set_ylim(max(1, len(clauses)), 0)
    ticks = [f"{n}\n({NOT_RUN})" if reports[n] is None else n for n in names]
    ax.set_xticks([i + 0.5 for i in range(len(names))], ticks, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([i + 0.5 for i in range(len(clauses))], clauses, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    legend = [Patch(facecolor=c, label=o) for o, c in OUTCOME_COLOURS.items()]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8, frameon=False)
    notes = [f"{n}: {NOT_RUN}: {(reasons or {}).get(n, 'the suite wrote no report')}" for n in not_run]
    if notes:
        fig.text(0.01, 0.005, "\n".join(notes), fontsize=7, ha="left", va="bottom")
    ax.set_title("FP8 conformance (fp8ref check)", fontsize=10, pad=24)
    fig.tight_layout(rect=(0, 0.03 * len(notes), 1, 1))
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
