"""The known-failures file: clauses or tests that an implementation is known to fail today.

One entry a line, in the report's own vocabulary, so that any label copied from the clause table means there
what it meant in the table:

- a clause id: ``C9d``; ``C13`` stands for C13 and C13a to C13e; ``G3`` for the GPU clause and its CPU twin;
- a CPU twin as the table labels it: ``G3/cpu`` (that twin only);
- a clause's section as the table cites it: ``SPEC.md#c9d`` (the clause C9d);
- a test as the detail column names it: ``test_c9d_names_containing_head_words_are_converted`` or with its
  parameter id ``test_c9d_names_containing_head_words_are_converted[output_proj]``; or as a node id, with its
  file (and optionally a folder) before it: ``test_c09_filter.py::test_c9d_...``.

``#`` at the start of a line or after a blank starts a comment; blank lines are ignored. Listed tests run as
non-strict xfails: a listed failure counts as ``known``; a listed test that is ``missing`` or ``blocked`` stays
so (the listing holds the line, it does not rename the verdict). An entry none of whose tests fails any more is
stale, and fails the run with a message saying it can be removed; a listed test that is blocked does not make
its entry stale. A clause blocked by a listed clause need not be listed itself. An entry that names no clause
or test of the suite is an error naming it (a typo would otherwise hide nothing and go unnoticed).
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import clauses as table
from ..spec import SPEC_PATH, spec_clauses
from .records import clause_of, clause_sort_key

_CLAUSE_ENTRY = re.compile(r"^(?:SPEC\.md#)?(?P<id>[CcGg]\d+[a-z]?)(?P<twin>/cpu)?$")
_TEST_ENTRY = re.compile(r"^(?:(?P<path>[^:\s]+\.py)::)?(?P<function>test_\w+)(?:\[(?P<params>.*)\])?$")
#: The folder of the clause test files (test node ids of a known-failures file name them).
_SUITE_DIR = Path(__file__).resolve().parent.parent
_COMMENT = re.compile(r"(?:^|\s)#.*$")
#: Test outcomes that keep an entry from going stale.
_STILL_FAILING = ("known", "failed", "error", "missing", "blocked")


class KnownFailuresError(ValueError):
    """The known-failures file cannot be used (unreadable, or an entry names nothing in the suite)."""


@dataclass(frozen=True)
class Entry:
    text: str
    line: int
    clause: str | None = None  # a clause entry, normalised ("c9d" -> "C9d", "G3/cpu" stays a twin)
    file: str | None = None  # a test entry: the test file's name (None: any), its function and parameter id
    function: str | None = None
    params: str | None = None

    def matches(self, clause: str, nodeid: str) -> bool:
        """Whether the test ``nodeid`` (of clause ``clause``, ``G1/cpu`` for a twin) falls under this entry."""
        if self.clause is not None:
            if self.clause.endswith("/cpu"):
                return clause == self.clause
            clause = clause.split("/", 1)[0]  # G1/cpu, a G test's CPU twin, falls under G1
            return clause == self.clause or (
                clause.startswith(self.clause) and len(clause) == len(self.clause) + 1 and clause[-1].isalpha()
            )
        path, _, name = nodeid.partition("::")
        function, _, params = name.partition("[")
        if (self.file is not None and Path(path).name != self.file) or function != self.function:
            return False
        return self.params is None or params.rstrip("]") == self.params

    def covers_clause(self, clause: str) -> bool:
        """A clause entry that covers every test of ``clause`` (a listed blocker holds the clauses it blocks)."""
        return self.clause is not None and self.matches(clause, "")


def _clause_entry(text: str) -> str:
    return text[0].upper() + text[1:]


@functools.cache
def _test_files() -> dict[str, tuple[str, ...]]:
    """Test function name -> the suite's test files that define it."""
    found: dict[str, list[str]] = {}
    for path in sorted(_SUITE_DIR.glob("test_*.py")):
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.M):
            found.setdefault(name, []).append(path.name)
    return {name: tuple(files) for name, files in found.items()}


def suite_clauses() -> tuple[str, ...]:
    """The clauses that have tests in the suite (``C9d``; a G clause once, for its tests and CPU twins)."""
    return tuple(clause.id for clause in table.tested())


def _twins_text() -> str:
    twins = tuple(clause for clause in table.clauses() if clause.cpu_twin)
    return "..".join(dict.fromkeys((twins[0].id + table.TWIN_SUFFIX, twins[-1].id + table.TWIN_SUFFIX)))


def parse_entry(text: str, line: int, known_clauses: Iterable[str]) -> Entry:
    """One entry, checked against the suite; raises :class:`KnownFailuresError` naming it otherwise."""
    known = set(known_clauses)
    where = f"line {line}: {text!r}"
    clause_match = _CLAUSE_ENTRY.match(text)
    if clause_match:
        clause = _clause_entry(clause_match["id"])
        if not any(c == clause or (c.startswith(clause) and len(c) == len(clause) + 1) for c in known):
            raise KnownFailuresError(f"{where} names no clause of the suite (clauses are {table.range_text()})")
        twinned = table.get(clause)
        if clause_match["twin"] and not (twinned is not None and twinned.cpu_twin):
            raise KnownFailuresError(f"{where}: only the G clauses have CPU twins ({_twins_text()})")
        return Entry(text, line, clause=clause + (clause_match["twin"] or ""))
    test_match = _TEST_ENTRY.match(text)
    if test_match is None or clause_of(test_match["function"]) is None:
        raise KnownFailuresError(
            f"{where} is neither a clause id (C9d, G3/cpu) nor a test of the suite "
            "(test_c9d_names_containing_head_words_are_converted, optionally with its [parameter id] or "
            "its file: test_c09_filter.py::test_c9d_...)"
        )
    function = test_match["function"]
    files = _test_files().get(function, ())
    file = Path(test_match["path"]).name if test_match["path"] else None
    if file is not None and file not in files:
        raise KnownFailuresError(f"{where} names no test of the suite (no test {function} in {file})")
    if not files:
        raise KnownFailuresError(f"{where} names no test of the suite (no test {function})")
    return Entry(text, line, file=file, function=function, params=test_match["params"])


def load_known_failures(path: str | Path) -> list[Entry]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KnownFailuresError(f"cannot read the known-failures file {path}: {exc}") from exc
    known = spec_clauses()
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = _COMMENT.sub("", raw).strip()  # "#" after a blank or at the start (not in "SPEC.md#c9d")
        if entry:
            try:
                entries.append(parse_entry(entry, number, known))
            except KnownFailuresError as exc:
                raise KnownFailuresError(f"known-failures file {path}, {exc}") from None
    return entries


def write_known_failures(path: str | Path, failing: Iterable[str], *, header: str, notes: Iterable[str] = ()) -> Path:
    """Write a known-failures file listing the clause labels ``failing`` (as the report prints them), with
    ``notes`` as comment lines after them."""
    path = Path(path)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += sorted(set(failing), key=clause_sort_key)
    lines += [f"# {note}" for note in notes]
    path.write_text("\n".join(lines) + "\n")
    return path


#: The clause outcomes a known-failures file written from a report lists.
LISTED_OUTCOMES = ("failed", "missing", "known")


def write_known_failures_of(path: str | Path, impl: str, report: Mapping[str, Any]) -> list[str]:
    """Write a known-failures file listing the clauses that do not pass in ``report`` (a run against ``impl``),
    labelled as the report shows them; returns them. A blocked clause is left out when its blockers are listed
    (a comment says so), and listed when one of them is not."""
    clauses = report.get("clauses", {})
    failing = [c for c, d in clauses.items() if d["outcome"] in LISTED_OUTCOMES]
    notes = []
    for clause, data in clauses.items():
        if data["outcome"] != "blocked":
            continue
        blockers = list(data.get("blocked_by") or [])
        if blockers and all(b in failing for b in blockers):
            notes.append(f"{clause} is blocked by {', '.join(blockers)}: held by that entry, judged once it passes")
        else:
            failing.append(clause)
    header = (
        f"Known failures of {impl}: the clauses that fail today.\n"
        f"Written by `fp8ref check --impl {impl} --write-xfails {path}` on {datetime.date.today().isoformat()}.\n"
        "Each line is a label of the clause table: a clause id (C9d), a CPU twin (G3/cpu), or a test name\n"
        f"(test_c9d_...[param]). The clauses are explained in the suite's spec, {SPEC_PATH}.\n"
        "Remove a line when its clause is fixed: a listed clause that passes fails the run."
    )
    write_known_failures(path, failing, header=header, notes=notes)
    return sorted(failing, key=clause_sort_key)


def stale_entries(known: Iterable[Entry], outcomes: Mapping[str, list[str]]) -> list[Entry]:
    """Entries whose tests ran and none of which failed: the known failure is fixed. ``outcomes`` maps an
    entry's text to the outcomes of the tests it covered (a blocked test counts as not fixed)."""
    stale = []
    for entry in known:
        seen = outcomes.get(entry.text, [])
        if "passed" in seen and not any(o in _STILL_FAILING for o in seen):
            stale.append(entry)
    return stale
