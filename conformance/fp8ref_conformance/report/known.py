"""The known-failures file: clauses or tests that an implementation is known to fail today.

One entry a line: a clause id (``C9d``; ``C13`` stands for C13 and C13a to C13e) or a test node id
(``test_c09_filter.py::test_c9d_names_containing_head_words_are_converted``, optionally with a folder
before the file name and a parameter id after the test name). ``#`` starts a comment; blank lines are
ignored. Listed tests run as non-strict xfails; an entry none of whose tests fails any more is stale, and
fails the run with a message saying it can be removed. An entry that names no clause or test of the suite
is an error naming it (a typo would otherwise hide nothing and go unnoticed).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import SPEC_URL, spec_clauses
from .records import clause_of, clause_sort_key

_CLAUSE_ENTRY = re.compile(r"^[CcGg]\d+[a-z]?$")
#: The folder of the clause test files (test node ids of a known-failures file name them).
_SUITE_DIR = Path(__file__).resolve().parent.parent


class KnownFailuresError(ValueError):
    """The known-failures file cannot be used (unreadable, or an entry names nothing in the suite)."""


@dataclass(frozen=True)
class Entry:
    text: str
    line: int
    clause: str | None = None  # a clause entry, normalised ("c9d" -> "C9d")
    file: str | None = None  # a test entry: the test file's name, its function and optional parameter id
    function: str | None = None
    params: str | None = None

    def matches(self, clause: str, nodeid: str) -> bool:
        """Whether the test ``nodeid`` (of clause ``clause``) falls under this entry."""
        if self.clause is not None:
            clause = clause.split("/", 1)[0]  # G1/cpu, a G test's CPU twin, falls under G1
            return clause == self.clause or (
                clause.startswith(self.clause) and len(clause) == len(self.clause) + 1 and clause[-1].isalpha()
            )
        path, _, name = nodeid.partition("::")
        function, _, params = name.partition("[")
        if Path(path).name != self.file or function != self.function:
            return False
        return self.params is None or params.rstrip("]") == self.params


def _clause_entry(text: str) -> str:
    return text[0].upper() + text[1:]


def parse_entry(text: str, line: int, known_clauses: Iterable[str]) -> Entry:
    """One entry, checked against the suite; raises :class:`KnownFailuresError` naming it otherwise."""
    known = set(known_clauses)
    where = f"line {line}: {text!r}"
    if _CLAUSE_ENTRY.match(text):
        clause = _clause_entry(text)
        if not any(c == clause or (c.startswith(clause) and len(c) == len(clause) + 1) for c in known):
            raise KnownFailuresError(f"{where} names no clause of the suite (clauses are C1..C17, G1..G4)")
        return Entry(text, line, clause=clause)
    path, sep, name = text.partition("::")
    function, _, params = name.partition("[")
    file = Path(path).name
    if not sep or not file.endswith(".py") or clause_of(function) is None:
        raise KnownFailuresError(
            f"{where} is neither a clause id (C9d) nor a test node id of the suite "
            "(test_c09_filter.py::test_c9d_names_containing_head_words_are_converted)"
        )
    source = _SUITE_DIR / file
    if not source.is_file() or not re.search(rf"^def {re.escape(function)}\(", source.read_text(), re.M):
        raise KnownFailuresError(f"{where} names no test of the suite (no test {function} in {file})")
    return Entry(text, line, file=file, function=function, params=params.rstrip("]") or None)


def load_known_failures(path: str | Path) -> list[Entry]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KnownFailuresError(f"cannot read the known-failures file {path}: {exc}") from exc
    known = spec_clauses()
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if entry:
            try:
                entries.append(parse_entry(entry, number, known))
            except KnownFailuresError as exc:
                raise KnownFailuresError(f"known-failures file {path}, {exc}") from None
    return entries


def write_known_failures(path: str | Path, failing: Iterable[str], *, header: str) -> Path:
    """Write a known-failures file listing the clause ids ``failing``."""
    path = Path(path)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += sorted({clause.split("/", 1)[0] for clause in failing}, key=clause_sort_key)
    path.write_text("\n".join(lines) + "\n")
    return path


#: The clause outcomes a known-failures file written from a report lists.
LISTED_OUTCOMES = ("failed", "missing", "known")


def write_known_failures_of(path: str | Path, impl: str, report: Mapping[str, Any]) -> list[str]:
    """Write a known-failures file listing the clauses that do not pass in ``report`` (a run against ``impl``);
    returns them."""
    failing = [c for c, d in report.get("clauses", {}).items() if d["outcome"] in LISTED_OUTCOMES]
    header = (
        f"Known failures of {impl}: the clauses that fail today.\n"
        f"Written by `fp8ref check --impl {impl} --write-xfails {path}` on {datetime.date.today().isoformat()}.\n"
        f"Each line is a clause id ({SPEC_URL}#c9d explains C9d) or a test node id.\n"
        "Remove a line when its clause is fixed: a listed clause that passes fails the run."
    )
    write_known_failures(path, failing, header=header)
    return failing


def stale_entries(known: Iterable[Entry], outcomes: Mapping[str, list[str]]) -> list[Entry]:
    """Entries whose tests ran and none of which failed: the known failure is fixed. ``outcomes`` maps an
    entry's text to the outcomes of the tests it covered."""
    stale = []
    for entry in known:
        seen = outcomes.get(entry.text, [])
        if "passed" in seen and not any(o in ("known", "failed", "error", "missing") for o in seen):
            stale.append(entry)
    return stale
