"""Where the suite's specification lives (``SPEC.md``, shipped in the package) and which clauses it has."""

from __future__ import annotations

import functools
import re
from pathlib import Path

SPEC_NAME = "SPEC.md"
SPEC_PATH = Path(__file__).resolve().parent / SPEC_NAME

_HEADING = re.compile(r"^###\s+(?P<id>[CG]\d+[a-z]?)\s*$", re.M)


def anchor(clause: str) -> str:
    """The section of ``clause`` in the spec: ``SPEC.md#c9d`` (GitHub's anchor of the heading ``### C9d``)."""
    return f"{SPEC_NAME}#{clause.split('/', 1)[0].lower()}"  # G1/cpu, a CPU twin, points to G1


@functools.cache
def spec_clauses() -> tuple[str, ...]:
    """The clause ids that have a section (a ``### C9d`` heading) in the spec."""
    try:
        text = SPEC_PATH.read_text()
    except OSError:
        return ()
    return tuple(m["id"] for m in _HEADING.finditer(text))
