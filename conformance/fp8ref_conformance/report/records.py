"""Clause bookkeeping of the conformance suite: test name -> clause, each test's outcome, each clause's outcome,
and the JSON report."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clauses as table
from .outcomes import PhaseOutcome

#: Outcomes of one test, from best to worst. ``known``: a failure listed in the known-failures file (an
#: xfail); ``blocked``: another clause's broken behaviour kept the test from its check; ``missing``: the test
#: needs a contract function that the implementation does not offer.
TEST_OUTCOMES = ("passed", "skipped", "known", "blocked", "missing", "failed", "error")

#: Outcomes of a clause, as the table and the JSON report give them.
CLAUSE_OUTCOMES = ("passed", "failed", "missing", "blocked", "known", "skipped")


def clause_of(test_name: str) -> str | None:
    """The clause a test is named after (``test_c9d_...``: C9d, a clause of the table), or ``None``."""
    return table.clause_of_test(test_name)


def clause_sort_key(clause: str) -> tuple[int, str]:
    """Contract order of clause labels (``G1/cpu`` right after ``G1``)."""
    return table.sort_key(clause)


@dataclass
class CaseRecord:
    nodeid: str
    outcome: str = "passed"
    message: str | None = None
    duration: float = 0.0
    #: The contract functions the test needed and the implementation does not offer (outcome ``missing``).
    missing: list[str] = field(default_factory=list)
    #: ``{"clause": ..., "reason": ...}`` when another clause blocked the test (outcome ``blocked``).
    blocked_by: dict[str, str] | None = None
    #: Whether a known-failures entry covers the test (it ran as an xfail).
    listed: bool = False

    def update(self, phase: PhaseOutcome | str, message: str | None = None, duration: float = 0.0) -> None:
        """Merge the report of one phase (setup, call, teardown) into the test's outcome."""
        if isinstance(phase, str):
            phase = PhaseOutcome(phase, message)
        self.duration += duration
        self.listed = self.listed or phase.listed
        self.missing += [name for name in phase.missing if name not in self.missing]
        if TEST_OUTCOMES.index(phase.outcome) > TEST_OUTCOMES.index(self.outcome):
            self.outcome = phase.outcome
            self.message = phase.message
            self.blocked_by = phase.blocked_by
        elif phase.outcome == self.outcome and self.message is None:
            self.message = phase.message


@dataclass
class ClauseResult:
    clause: str
    tests: list[CaseRecord] = field(default_factory=list)
    #: Known-failures entries covering this clause that no longer fail (they should be removed).
    stale: list[str] = field(default_factory=list)
    #: Set by :func:`.session.build_report`: the clause does not pass, and the known-failures file accounts for it.
    held: bool = False

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TEST_OUTCOMES, 0)
        for test in self.tests:
            counts[test.outcome] += 1
        return counts

    @property
    def outcome(self) -> str:
        """``failed`` if any test failed or errored, or a known-failures entry went stale; else ``missing`` if a
        test needs a function the implementation lacks; else ``blocked`` if a test was blocked by another
        clause; else ``known`` if a test's failure is listed as known; ``passed`` if any test passed and the
        rest passed or skipped; ``skipped`` if every test skipped."""
        counts = self.counts
        if counts["failed"] or counts["error"] or self.stale:
            return "failed"
        for outcome in ("missing", "blocked", "known", "passed"):
            if counts[outcome]:
                return outcome
        return "skipped"

    @property
    def missing(self) -> list[str]:
        """The contract functions this clause's tests needed and did not find."""
        names: list[str] = []
        for test in self.tests:
            names += [n for n in test.missing if n not in names]
        return names

    @property
    def blocked_by(self) -> list[str]:
        """The clauses that blocked tests of this clause, in the order first seen."""
        return list(dict.fromkeys(t.blocked_by["clause"] for t in self.tests if t.blocked_by))

    @property
    def label(self) -> str:
        """The outcome as the tables print it: ``blocked by C6`` for a blocked clause."""
        if self.outcome == "blocked":
            return f"blocked by {', '.join(self.blocked_by)}"
        return self.outcome

    @property
    def listed(self) -> bool:
        """Every test that does not pass is covered by a known-failures entry."""
        failing = [t for t in self.tests if t.outcome not in ("passed", "skipped")]
        return bool(failing) and all(t.listed for t in failing)

    @property
    def first_failure(self) -> str | None:
        if self.stale:
            return (
                f"listed as a known failure ({', '.join(repr(s) for s in self.stale)}) but passes now: "
                "remove the entry from the known-failures file"
            )
        if self.outcome == "missing":
            return f"missing: {', '.join(self.missing)}"
        wanted = {"known": ("known",), "blocked": ("blocked",)}.get(self.outcome, ("failed", "error"))
        for test in self.tests:
            if test.outcome in wanted:
                headline = (test.message or "").strip().splitlines()[0] if test.message else ""
                return f"{test.nodeid.rsplit('::', 1)[-1]}: {headline[:500]}"
        return None

    @property
    def skip_reason(self) -> str | None:
        if self.outcome != "skipped":
            return None
        return next((t.message for t in self.tests if t.message), None)

    def to_json(self) -> dict[str, Any]:
        from ..spec import SPEC_PATH, anchor

        return {
            "outcome": self.outcome,
            "label": self.label,
            "held": self.held,
            "spec": anchor(self.clause),
            "spec_file": f"{SPEC_PATH}#{anchor(self.clause).split('#', 1)[1]}",
            "counts": self.counts,
            "first_failure": self.first_failure,
            "missing": self.missing,
            "blocked_by": self.blocked_by,
            "stale_known_failures": self.stale,
            "skip_reason": self.skip_reason,
            "tests": [
                {
                    "nodeid": t.nodeid,
                    "outcome": t.outcome,
                    "message": t.message,
                    "blocked_by": t.blocked_by,
                    "listed": t.listed,
                    "duration_s": round(t.duration, 3),
                }
                for t in self.tests
            ],
        }


def group_by_clause(records: Iterable[tuple[str, CaseRecord]]) -> list[ClauseResult]:
    """Group ``(clause, record)`` pairs into clause results, in contract order."""
    by_clause: dict[str, ClauseResult] = {}
    for clause, record in records:
        by_clause.setdefault(clause, ClauseResult(clause)).tests.append(record)
    return [by_clause[c] for c in sorted(by_clause, key=clause_sort_key)]


def mark_held(results: list[ClauseResult], listed: Callable[[str], bool] | None = None) -> None:
    """Set ``held`` on each clause that does not pass but is accounted for by the known-failures file: its
    failures are listed (``known``), its missing or blocked tests are listed, or every clause blocking it is
    listed (``listed(clause)``: a clause entry covers it) or held itself. A block whose blocker passes, or did
    not run and is not listed, is held by nothing: once the blocker is fixed, the clause is judged on its own."""
    by_clause = {r.clause: r for r in results}
    is_listed = listed or (lambda clause: False)

    def held(result: ClauseResult, depth: int) -> bool:
        if result.outcome == "known" or (result.outcome in ("missing", "blocked") and result.listed):
            return True
        if result.outcome != "blocked" or depth > len(by_clause):
            return False
        unlisted = [t.blocked_by["clause"] for t in result.tests if t.blocked_by and not t.listed]
        return all(blocker_held(clause, depth) for clause in unlisted)

    def blocker_held(clause: str, depth: int) -> bool:
        if is_listed(clause):
            return True
        blocker = by_clause.get(clause)
        return blocker is not None and blocker.outcome not in ("passed", "skipped") and held(blocker, depth + 1)

    for result in results:
        result.held = held(result, 0)


def all_passed(results: Iterable[ClauseResult]) -> bool:
    """True when there is at least one clause and every clause passed or is held by the known-failures file."""
    results = list(results)
    return bool(results) and all(r.outcome == "passed" or r.held for r in results)


def write_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path
