"""The clause table as a picture (PNG): one coloured cell per clause and implementation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .render import clauses_of, outcome_of

#: Colours of the outcomes in the picture and the order of its legend.
OUTCOME_COLOURS = {
    "passed": "#2e9d4f",
    "failed": "#d62f2f",
    "known": "#f0a020",
    "missing": "#8e5bc4",
    "skipped": "#b0b0b0",
}


def draw_table(reports: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Write the table of ``reports`` (clauses down, implementations across) to ``path`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    names = list(reports)
    clauses = clauses_of(reports)
    fig_w = 2.2 + 2.0 * len(names)
    fig_h = 1.6 + 0.28 * len(clauses)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=110)
    for row, clause in enumerate(clauses):
        for col, name in enumerate(names):
            outcome = outcome_of(reports[name], clause)
            colour = OUTCOME_COLOURS.get(outcome, "#ffffff")
            ax.add_patch(Rectangle((col, row), 1, 1, facecolor=colour, edgecolor="white", linewidth=1.5))
            ax.text(col + 0.5, row + 0.5, outcome, ha="center", va="center", fontsize=8, color="black")
    ax.set_xlim(0, len(names))
    ax.set_ylim(len(clauses), 0)
    ax.set_xticks([i + 0.5 for i in range(len(names))], names, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([i + 0.5 for i in range(len(clauses))], clauses, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    legend = [Patch(facecolor=c, label=o) for o, c in OUTCOME_COLOURS.items()]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=5, fontsize=8, frameon=False)
    ax.set_title("FP8 conformance (fp8ref check)", fontsize=10, pad=24)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
