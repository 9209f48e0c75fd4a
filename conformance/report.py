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

#: Outcomes of one test, from best to worst. ``known``: a failure listed in the known-failures file (an
#: xfail); ``missing``: the test needs a contract function that the implementation does not offer.
TEST_OUTCOMES = ("passed", "skipped", "known", "missing", "failed", "error")

#: Outcomes of a clause, as the table and the JSON report give them.
CLAUSE_OUTCOMES = ("passed", "failed", "missing", "known", "skipped")

_MISSING_RE = re.compile(r"^(?:Failed: )?missing: (?P<names>[\w, ]+)$")


def missing_functions_in(message: str | None) -> list[str]:
    """The contract functions named by a ``missing: a, b`` failure (else none). Only the first line counts:
    hypothesis appends the failing example below it."""
    lines = (message or "").strip().splitlines()
    match = _MISSING_RE.match(lines[0].strip()) if lines else None
    return [n.strip() for n in match["names"].split(",")] if match else []


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
            names += [n for n in missing_functions_in(test.message) if n not in names]
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
        from .spec import SPEC_PATH, anchor

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
    from .spec import SPEC_PATH

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
    if impl.get("missing"):
        lines.append(f"missing contract functions: {', '.join(impl['missing'])}")
    lines.append(f"{'clause':<7} {'outcome':<8} {'pass':>4} {'fail':>4} {'skip':>4}  detail")
    for clause, data in report.get("clauses", {}).items():
        counts = data["counts"]
        prefix = f"{clause:<7} {data['outcome'].upper():<8} {counts['passed']:>4} "
        failing = sum(counts.get(o, 0) for o in ("failed", "error", "missing", "known"))
        prefix += f"{failing:>4} {counts['skipped']:>4}  "
        if data["outcome"] in ("failed", "missing", "known"):
            # Every failure line points to its clause's section of the spec, before the (shortened) detail.
            detail = f"[{data.get('spec') or clause}] {data.get('first_failure') or ''}"
        else:
            detail = data.get("skip_reason") or ""
        lines.append(prefix + _shorten(detail, max(20, width - len(prefix))))
    lines.append(verdict_line(report))
    return lines


def verdict_line(report: Mapping[str, Any]) -> str:
    summary = report.get("summary", {})
    if report.get("all_passed"):
        verdict = "CONFORMS"
    elif summary.get("failed", 0) or summary.get("missing", 0) or not report.get("clauses"):
        verdict = "DOES NOT CONFORM"
    else:
        verdict = "NOT VERIFIED (clauses skipped)"
    counts = ", ".join(f"{summary.get(o, 0)} {o}" for o in ("failed", "missing", "known", "skipped") if summary.get(o))
    return f"{verdict}: {summary.get('passed', 0)} clauses passed" + (f", {counts}" if counts else "")
