"""Clause bookkeeping of the conformance suite: test name -> clause, outcomes, JSON report, table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``test_c9d_...`` -> ``C9d``; ``test_g2_...`` -> ``G2``; ``test_c12_...`` -> ``C12``.
_CLAUSE_RE = re.compile(r"^test_(?P<letter>[cg])(?P<num>\d+)(?P<sub>[a-z]?)_")

#: Outcomes of one test, from best to worst.
TEST_OUTCOMES = ("passed", "skipped", "failed", "error")


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

    def update(self, outcome: str, message: str | None, duration: float) -> None:
        """Merge the report of one phase (setup, call, teardown) into the test's outcome."""
        self.duration += duration
        if TEST_OUTCOMES.index(outcome) > TEST_OUTCOMES.index(self.outcome):
            self.outcome = outcome
            self.message = message
        elif outcome == self.outcome and self.message is None:
            self.message = message


@dataclass
class ClauseResult:
    clause: str
    tests: list[CaseRecord] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TEST_OUTCOMES, 0)
        for test in self.tests:
            counts[test.outcome] += 1
        return counts

    @property
    def outcome(self) -> str:
        """``failed`` if any test failed or errored; ``passed`` if any passed and the rest passed or
        skipped; ``skipped`` if every test skipped."""
        counts = self.counts
        if counts["failed"] or counts["error"]:
            return "failed"
        if counts["passed"]:
            return "passed"
        return "skipped"

    @property
    def first_failure(self) -> str | None:
        for test in self.tests:
            if test.outcome in ("failed", "error"):
                headline = (test.message or "").strip().splitlines()[0] if test.message else ""
                return f"{test.nodeid.rsplit('::', 1)[-1]}: {headline[:500]}"
        return None

    @property
    def skip_reason(self) -> str | None:
        if self.outcome != "skipped":
            return None
        return next((t.message for t in self.tests if t.message), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "counts": self.counts,
            "first_failure": self.first_failure,
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
    """True when there is at least one clause and every clause passed."""
    results = list(results)
    return bool(results) and all(r.outcome == "passed" for r in results)


def build_report(implementation: Mapping[str, Any], results: list[ClauseResult]) -> dict[str, Any]:
    outcomes = [r.outcome for r in results]
    return {
        "implementation": dict(implementation),
        "all_passed": all_passed(results),
        "summary": {o: outcomes.count(o) for o in ("passed", "failed", "skipped")},
        "clauses": {r.clause: r.to_json() for r in results},
    }


def write_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


def _shorten(text: str | None, width: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(report: Mapping[str, Any], width: int = 110) -> list[str]:
    """The clause table as lines: clause, outcome, counts, and the first failure (or skip reason)."""
    impl = report.get("implementation", {})
    lines = [f"FP8 conformance of {impl.get('module') or '?'} {impl.get('version') or ''}".rstrip()]
    if impl.get("error"):
        lines.append(f"implementation error: {impl['error']}")
    lines.append(f"{'clause':<7} {'outcome':<8} {'pass':>4} {'fail':>4} {'skip':>4}  detail")
    for clause, data in report.get("clauses", {}).items():
        counts = data["counts"]
        detail = data.get("first_failure") or data.get("skip_reason") or ""
        prefix = f"{clause:<7} {data['outcome'].upper():<8} {counts['passed']:>4} "
        prefix += f"{counts['failed'] + counts['error']:>4} {counts['skipped']:>4}  "
        lines.append(prefix + _shorten(detail, max(20, width - len(prefix))))
    summary = report.get("summary", {})
    if report.get("all_passed"):
        verdict = "CONFORMS"
    elif summary.get("failed", 0) or not report.get("clauses"):
        verdict = "DOES NOT CONFORM"
    else:
        verdict = "NOT VERIFIED (clauses skipped)"
    lines.append(
        f"{verdict}: {summary.get('passed', 0)} clauses passed, {summary.get('failed', 0)} failed, "
        f"{summary.get('skipped', 0)} skipped"
    )
    return lines
