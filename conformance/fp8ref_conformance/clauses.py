"""The suite's clauses, declared once (``clauses.json``, shipped with the package): every reader of clause ids (the
spec's checks, the report, the known-failures file, the CLI, the README's counts) asks this module.

A row says what the clause's tests need, not what its rule is (that is ``SPEC.md``): the contract functions they
call (a module without one of them gets ``missing`` there), the child processes they read, whether the clause is
a GPU clause (judged on CUDA; a CPU run judges only its CPU twin, labelled ``G1/cpu``), and whether it has tests
of its own (``C13`` has none: its sub-clauses C13a..C13e judge it).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

TABLE_PATH = Path(__file__).resolve().parent / "clauses.json"
SPEC_NAME = "SPEC.md"
#: The label suffix of a G clause's CPU twin (``G1/cpu``).
TWIN_SUFFIX = "/cpu"


@dataclass(frozen=True)
class Clause:
    id: str
    title: str
    #: The contract functions the clause's tests call, in the contract's order.
    needs: tuple[str, ...]
    #: The child processes the clause's tests read (names of the suite's child registry).
    children: tuple[str, ...]
    #: A GPU clause: its verdict needs a CUDA device (marker ``gpu``).
    gpu: bool
    #: Its tests also run on the CPU, as a twin with its own row (``G1/cpu``).
    cpu_twin: bool
    #: It has tests of its own (else its sub-clauses judge it).
    own_tests: bool

    @property
    def anchor(self) -> str:
        """Its section in the spec: ``SPEC.md#c9d`` (GitHub's anchor of the heading ``### C9d``)."""
        return f"{SPEC_NAME}#{self.id.lower()}"

    @property
    def letter(self) -> str:
        return self.id[0]


@functools.cache
def clauses() -> tuple[Clause, ...]:
    """Every clause, in the contract's order (the order of ``SPEC.md``'s sections)."""
    rows = json.loads(TABLE_PATH.read_text())["clauses"]
    return tuple(
        Clause(
            id=row["id"],
            title=row["title"],
            needs=tuple(row["needs"]),
            children=tuple(row["children"]),
            gpu=bool(row["gpu"]),
            cpu_twin=bool(row["cpu_twin"]),
            own_tests=bool(row["own_tests"]),
        )
        for row in rows
    )


@functools.cache
def _by_id() -> dict[str, Clause]:
    return {clause.id: clause for clause in clauses()}


def ids() -> tuple[str, ...]:
    return tuple(clause.id for clause in clauses())


def get(clause_id: str) -> Clause | None:
    """The clause ``clause_id`` (``G1/cpu``, a twin's label, gives G1), or ``None`` when the table has no such id."""
    return _by_id().get(clause_id.split("/", 1)[0])


def sort_key(label: str) -> tuple[int, str]:
    """Contract order for a clause id or a label that starts with one (``G1/cpu``, ``C9d (in part)``: after the
    clause itself); labels of no clause come last."""
    for clause_id in _ids_longest_first():
        rest = label[len(clause_id) :]
        if label.startswith(clause_id) and not rest[:1].isalnum():
            return (_positions()[clause_id], rest)
    return (len(_positions()), label)


@functools.cache
def _positions() -> dict[str, int]:
    return {clause_id: n for n, clause_id in enumerate(ids())}


@functools.cache
def _ids_longest_first() -> tuple[str, ...]:
    return tuple(sorted(ids(), key=len, reverse=True))


def clause_of_test(test_name: str) -> str | None:
    """The clause a test is named after (``test_c9d_...`` is C9d's), or ``None`` when its name starts with no
    clause id of the table followed by ``_``."""
    name = test_name.split("[", 1)[0].lower()
    for clause_id in _ids_longest_first():
        if name.startswith(f"test_{clause_id.lower()}_"):
            return clause_id
    return None


def tested() -> tuple[Clause, ...]:
    """The clauses that have tests of their own (a row each in a report)."""
    return tuple(clause for clause in clauses() if clause.own_tests)


def cpu_rows() -> tuple[str, ...]:
    """The rows of a complete CPU run: every tested clause, a GPU clause by its CPU twin (none without one)."""
    return tuple(c.id + TWIN_SUFFIX if c.gpu else c.id for c in tested() if not c.gpu or c.cpu_twin)


def gpu_clauses() -> tuple[Clause, ...]:
    return tuple(clause for clause in clauses() if clause.gpu)


def range_text(selection: tuple[Clause, ...] | None = None) -> str:
    """The clauses as a human reads their range, one run per letter: ``C0..C17, G1..G5`` (sub-clauses such as
    C9d fall inside their number's range)."""
    numbered: dict[str, list[str]] = {}
    for clause in clauses() if selection is None else selection:
        number = clause.id.rstrip("abcdefghijklmnopqrstuvwxyz")
        runs = numbered.setdefault(clause.letter, [])
        if number not in runs:
            runs.append(number)
    return ", ".join(runs[0] if len(runs) == 1 else f"{runs[0]}..{runs[-1]}" for runs in numbered.values())
