"""What one session of the suite recorded: the clause of each test report, the outcome of each test phase by
phase, the clauses a selection left out, and the JSON report built from them (:mod:`.records`). The plugin's hooks
(:mod:`..plugin`) feed it; it works alike in a plain session, in an xdist worker and in the xdist controller, which
collects nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .. import clauses as table
from ..implementation import ImplementationInfo
from ..spec import SPEC_PATH
from .causes import root_causes
from .known import Entry, stale_entries, suite_clauses
from .outcomes import outcome_of_report
from .records import (
    CLAUSE_OUTCOMES,
    CaseRecord,
    ClauseResult,
    all_passed,
    clause_of,
    clause_sort_key,
    group_by_clause,
    mark_held,
)

#: The suite's package folder: a report's location inside it makes a test one of the suite's.
PKG_DIR = Path(__file__).resolve().parent.parent


@dataclass
class SessionState:
    impl_name: str
    records: dict[str, CaseRecord] = field(default_factory=dict)
    clause_of_node: dict[str, str] = field(default_factory=dict)
    implementation: ImplementationInfo | None = None
    known: list[Entry] = field(default_factory=list)
    known_file: str | None = None
    #: Known-failures entry text -> outcomes of the tests it covered (to find stale entries).
    known_outcomes: dict[str, list[str]] = field(default_factory=dict)
    #: Clauses (``G1/cpu`` for a twin) of suite tests that a ``-k``/``-m``/``--deselect`` selection left out.
    deselected: set[str] = field(default_factory=set)
    #: Node id -> how many of its phase reports pytest counted as failed.
    failed_reports: dict[str, int] = field(default_factory=dict)


STATE = pytest.StashKey[SessionState]()


def is_suite_path(config: pytest.Config, relpath: str) -> bool:
    path = (config.rootpath / relpath).resolve()
    return PKG_DIR in path.parents


def clause_of_report(
    config: pytest.Config, nodeid: str, location: tuple[str, Any, str], keywords: Mapping[str, Any]
) -> str | None:
    """The clause of a test of this suite, from its report alone: the node id names the test, the location
    (its file, relative to the rootdir) says whether it is one of this package's, and the keywords carry its
    markers. This works in an xdist controller, which collects nothing itself."""
    state = config.stash[STATE]
    if nodeid not in state.clause_of_node:
        name = nodeid.rsplit("::", 1)[-1]
        clause = clause_of(name) if is_suite_path(config, location[0]) else None
        declared = table.get(clause) if clause is not None else None
        if declared is not None and declared.gpu and "gpu" not in keywords:
            # A G test's CPU twin (stand-in TE, CPU torchao) never gives the G clause's verdict.
            clause = declared.id + table.TWIN_SUFFIX
        state.clause_of_node[nodeid] = clause or ""
    return state.clause_of_node[nodeid] or None


def gpu_split(config: pytest.Config) -> str | None:
    """``gpu`` or ``not gpu`` when the ``-m`` expression is exactly the suite's split of its tests, else None."""
    expression = " ".join(str(config.getoption("markexpr", "") or "").split())
    return expression if expression in ("gpu", "not gpu") else None


class Recorder:
    """Collects the outcome of every conformance test, phase by phase."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.config.stash[STATE]
        clause = clause_of_report(self.config, report.nodeid, report.location, report.keywords)
        if clause is None:
            return
        record = state.records.setdefault(report.nodeid, CaseRecord(report.nodeid))
        if report.failed and not hasattr(report, "wasxfail"):
            state.failed_reports[report.nodeid] = state.failed_reports.get(report.nodeid, 0) + 1
        phase = outcome_of_report(report)
        record.update(phase, duration=report.duration)
        if report.when == "call" or phase.outcome != "passed":
            for entry in state.known:
                if entry.matches(clause, report.nodeid):
                    state.known_outcomes.setdefault(entry.text, []).append(phase.outcome)


def not_run(config: pytest.Config, ran: set[str]) -> list[str]:
    """The suite's clauses this session did not run, or ran only in part: every clause that a test of the
    suite names (the G clauses only, for a ``-m gpu`` run), less those that ran in full."""
    state = config.stash[STATE]
    universe = set(suite_clauses())
    if gpu_split(config) == "gpu":
        universe &= {c.id for c in table.gpu_clauses()}
    ran_base = {c.split("/", 1)[0] for c in ran}
    partly = {c for c in state.deselected if c in ran}
    labels = sorted(universe - ran_base) + [f"{c} (in part)" for c in sorted(partly)]
    return sorted(labels, key=clause_sort_key)


def build(config: pytest.Config, describe: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """The report of the session so far (``None`` before any suite test ran, and then the implementation is not
    imported: another project's session never imports it); ``describe`` describes the module under test."""
    state = config.stash[STATE]
    if not state.records:
        return None
    records = [(state.clause_of_node[nodeid], rec) for nodeid, rec in state.records.items()]
    results = group_by_clause(records)
    stale = stale_entries(state.known, state.known_outcomes)
    for result in results:
        result.stale = [e.text for e in stale if any(e.matches(result.clause, t.nodeid) for t in result.tests)]
    report = build_report(
        describe(),
        results,
        listed=lambda clause: any(e.covers_clause(clause) for e in state.known),
        not_run=not_run(config, {r.clause for r in results}),
    )
    if state.known_file:
        report["known_failures_file"] = state.known_file
        report["known_failures"] = [e.text for e in state.known]
    return report


def only_held_blocks_failed(session: pytest.Session, describe: Callable[[], dict[str, Any]]) -> bool:
    """Whether every test pytest counted as failed is a blocked test of a clause the known-failures file holds
    (its blocker is listed), and nothing else failed in the session."""
    state = session.config.stash[STATE]
    report = build(session.config, describe) if state.known else None
    if not report or not report["all_passed"] or not state.failed_reports:
        return False
    held_blocked = {
        t["nodeid"]
        for data in report["clauses"].values()
        if data["held"]
        for t in data["tests"]
        if t["outcome"] == "blocked"
    }
    return set(state.failed_reports) <= held_blocked and session.testsfailed == sum(state.failed_reports.values())


def build_report(
    implementation: Mapping[str, Any],
    results: list[ClauseResult],
    *,
    listed: Callable[[str], bool] | None = None,
    not_run: list[str] | None = None,
) -> dict[str, Any]:
    """The JSON report. ``listed`` says whether a clause entry of the known-failures file covers a clause;
    ``not_run`` names the suite's clauses that this run did not run (a ``-k``/``-m`` selection), ``None`` when
    unknown."""
    mark_held(results, listed)
    outcomes = [r.outcome for r in results]
    summary = {o: outcomes.count(o) for o in CLAUSE_OUTCOMES}
    summary["held"] = sum(r.held for r in results)
    passed = all_passed(results)
    return {
        "implementation": dict(implementation),
        "spec_file": str(SPEC_PATH),
        "all_passed": passed,
        "complete": not not_run,
        "conforms": passed and not not_run and summary["held"] == 0,
        "not_run": list(not_run or []),
        "summary": summary,
        "clauses": {r.clause: r.to_json() for r in results},
        "root_causes": root_causes(results),
    }
