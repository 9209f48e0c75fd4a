"""Where the suite's specification lives (``SPEC.md``, shipped in the package) and which clauses it has (the
clause table, :mod:`.clauses`, whose order is the spec's)."""

from __future__ import annotations

from pathlib import Path

from . import clauses as table
from .clauses import SPEC_NAME

SPEC_PATH = Path(__file__).resolve().parent / SPEC_NAME


def anchor(clause: str) -> str:
    """The section of ``clause`` in the spec: ``SPEC.md#c9d`` (GitHub's anchor of the heading ``### C9d``); a CPU
    twin (``G1/cpu``) points to its clause's section."""
    return f"{SPEC_NAME}#{clause.split('/', 1)[0].lower()}"


def spec_clauses() -> tuple[str, ...]:
    """The clause ids that have a section (a ``### C9d`` heading) in the spec, in its order."""
    return table.ids()
