"""Clause bookkeeping of the conformance suite: test name -> clause, each test's outcome, each clause's outcome,
and the JSON report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``test_c9d_...`` -> ``C9d``; ``test_g2_...`` -> ``G2``; ``test_c12_...`` -> ``C12``.
_CLAUSE_RE = re.compile(r"^test_(?P<letter>[cg])(?P<num>\d+)(?P<sub>[a-z]?)_")

#: Outcomes of one test, from best to worst. ``known``: a failure listed in the known-failures file (an
#: xfail); ``missing``: the test needs a contract function that the implementation does not offer.
TEST_OUTCOMES = ("passed", "skipped", "known", "missing", "failed", "error")

#: Outcomes of a clause, as the table and the JSON report give them.
CLAUSE_OUTCOMES = ("passed", "failed", "missing", "known", "skipped")


def clause_of(test_name: str) -> str | None:
    """The clause a test is named after, or ``None`` when the name carries no clause id."""
    match = _CLAUSE_RE.match(test_name.split("[", 1)[0])
    if match is None:
        return None
    return f"{match['letter'].upper()}{int(match['num'])}{match['sub']}"


def clause_sort_key(clause: str) -> tuple[int, int, str]:
    match = re.match(r"([CG])(\d+)([a-z]?)", clause)
    if match is None:
        return (9, 0, clause)
    return (0 if match[1] == "C" else 1, int(match[2]), match[3])


@dataclass
class CaseRecord:
    nodeid: str
    outcome: str = "passed"
    message: str | None = None
    duration: float = 0.0
    #: The contract functions the test needed and the implementation does not offer (outcome ``missing``).
    missing: list[str] = field(default_factory=list)

    def update(self, outcome: str, message: str | None, duration: float, missing: list[str] | None = None) -> None:
        """Merge the report of one phase (setup, call, teardown) into the test's outcome."""
        self.duration += duration
        self.missing += [name for name in missing or () if name not in self.missing]
        if TEST_OUTCOMES.index(outcome) > TEST_OUTCOMES.index(self.outcome):
            self.outcome = outcome
            self.message = message
        elif outcome == self.outcome and self.message is None:
            self.message = message


@dataclass
class ClauseResult:
    clause: str
    tests: list[CaseRecord] = field(default_factory=list)
    #: Known-failures entries covering this clause that no longer fail (they should be removed).
    stale: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TEST_OUTCOMES, 0)
        for test in self.tests:
            counts[test.outcome] += 1
        return counts

    @property
    def outcome(self) -> str:
        """``failed`` if any test failed or errored, or a known-failures entry went stale; ``missing`` if the
        only failures are tests that need a function the implementation lacks; ``known`` if the only
        failures are listed as known; ``passed`` if any test passed and the rest passed or skipped;
        ``skipped`` if every test skipped."""
        counts = self.counts
        if counts["failed"] or counts["error"] or self.stale:
            return "failed"
        for outcome in ("missing", "known", "passed"):
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
    def first_failure(self) -> str | None:
        if self.stale:
            return (
                f"listed as a known failure ({', '.join(repr(s) for s in self.stale)}) but passes now: "
                "remove the entry from the known-failures file"
            )
        if self.outcome == "missing":
            return f"missing: {', '.join(self.missing)}"
        wanted = ("known",) if self.outcome == "known" else ("failed", "error")
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
            "spec": anchor(self.clause),
            "spec_file": f"{SPEC_PATH}#{anchor(self.clause).split('#', 1)[1]}",
            "counts": self.counts,
            "first_failure": self.first_failure,
            "missing": self.missing,
            "stale_known_failures": self.stale,
            "skip_reason": self.skip_reason,
            "tests": [
                {"nodeid": t.nodeid, "outcome": t.outcome, "message": t.message, "duration_s": round(t.duration, 3)}
                for t in self.tests
            ],
        }


def group_by_clause(records: Iterable[tuple[str, CaseRecord]]) -> list[ClauseResult]:
    """Group ``(clause, record)`` pairs into clause results, in contract order."""
    by_clause: dict[str, ClauseResult] = {}
    for clause, record in records:
        by_clause.setdefault(clause, ClauseResult(clause)).tests.append(record)
    return [by_clause[c] for c in sorted(by_clause, key=clause_sort_key)]


def all_passed(results: Iterable[ClauseResult]) -> bool:
    """True when there is at least one clause and every clause passed (or failed as listed: ``known``)."""
    results = list(results)
    return bool(results) and all(r.outcome in ("passed", "known") for r in results)


def build_report(implementation: Mapping[str, Any], results: list[ClauseResult]) -> dict[str, Any]:
    from ..spec import SPEC_PATH

    outcomes = [r.outcome for r in results]
    return {
        "implementation": dict(implementation),
        "spec_file": str(SPEC_PATH),
        "all_passed": all_passed(results),
        "summary": {o: outcomes.count(o) for o in CLAUSE_OUTCOMES},
        "clauses": {r.clause: r.to_json() for r in results},
    }


def write_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path
