"""pytest plugin of the FP8 conformance suite.

Loaded in every pytest session through the ``pytest11`` entry point. It therefore does only what must
be global, and nothing that another project's test session could notice: it adds command-line options
and records the outcomes of the suite's own tests (items from this package whose name carries a clause
id, ``test_c9d_...``). It registers no marker, fixture, hook on other tests or hypothesis setting: those
live in the suite's ``conftest.py`` and in :func:`.kit.strategies.suite_settings`, which apply to the suite's
tests only.

- ``--fp8-impl MODULE`` (else ``$FP8REF_IMPL``, else ``fp8ref``) chooses the implementation; the report
  header names its module, file, version and any contract functions it lacks.
- ``--conformance-report PATH`` writes a JSON report per clause, and the terminal summary ends with
  the clause table; each failure points to its clause's section of ``SPEC.md``.
- ``--fp8-xfails FILE`` reads a known-failures file (see :mod:`.report.known`).

Clause and suite membership come from each test report's node id, not from this process's collection,
so the table and the report are complete under pytest-xdist too (there the workers collect). The functions
a test found missing, and the clause that blocked a test, travel in the report's ``user_properties`` (see
:mod:`.implementation` and :mod:`.kit.verdicts`). Which clauses a ``-k``/``-m`` selection left out is known
from the suite's own test files and from the tests deselected (sent by xdist workers in ``workeroutput``), so
that a run of a subset never reads as conformance.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .implementation import MISSING_PROPERTY, ImplementationInfo, MissingContractFunctions, load_implementation
from .kit.verdicts import BLOCKED_PROPERTY, Blocked
from .report.known import Entry, KnownFailuresError, load_known_failures, stale_entries, suite_clauses
from .report.outcomes import outcome_of_report
from .report.records import CaseRecord, build_report, clause_of, clause_sort_key, group_by_clause, write_report
from .report.render import format_table

DEFAULT_IMPL = "fp8ref"
IMPL_ENV_VAR = "FP8REF_IMPL"
#: Set by ``fp8ref check`` in its child so that the table is printed once, by the runner.
NO_TABLE_ENV = "FP8REF_CONFORMANCE_NO_TABLE"
_PKG_DIR = Path(__file__).resolve().parent


@dataclass
class _SessionState:
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


_STATE = pytest.StashKey[_SessionState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fp8-conformance")
    group.addoption(
        "--fp8-impl",
        default=None,
        help=f"module implementing the five FP8 helper functions (default: ${IMPL_ENV_VAR} or {DEFAULT_IMPL})",
    )
    group.addoption(
        "--conformance-report",
        default=None,
        metavar="PATH",
        help="write the conformance result per clause (tests, outcome, first failure) to PATH as JSON",
    )
    group.addoption(
        "--fp8-xfails",
        default=None,
        metavar="FILE",
        help="known-failures file: clause ids (C9d, C13) or test node ids, one a line, that fail today; "
        "they count as 'known', and an entry that passes or names nothing fails the run",
    )


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("fp8_impl") or os.environ.get(IMPL_ENV_VAR) or DEFAULT_IMPL
    state = _SessionState(impl_name=str(name))
    config.stash[_STATE] = state
    path = config.getoption("fp8_xfails", None)
    if path:
        try:
            state.known = load_known_failures(path)
        except KnownFailuresError as exc:
            raise pytest.UsageError(str(exc)) from None
        state.known_file = str(path)


def implementation_of(config: pytest.Config) -> ImplementationInfo:
    """The implementation chosen for this session, imported once per process (the suite's conftest asks here)."""
    if _STATE not in config.stash:
        raise pytest.UsageError(
            "the FP8 conformance suite needs its pytest plugin 'fp8ref_conformance', which is not loaded: "
            "install fp8ref (pip install 'fp8ref[test]') and do not block it with -p no:fp8ref_conformance"
        )
    state = config.stash[_STATE]
    if state.implementation is None:
        state.implementation = load_implementation(state.impl_name)
    return state.implementation


def _wants_conformance(config: pytest.Config) -> bool:
    """Whether this session runs the suite: one of its options was given, or an argument names this package
    (``--pyargs fp8ref_conformance``) or a path inside it. Another project's session never qualifies, even
    with "conformance" in its own paths."""
    if config.getoption("fp8_impl") or config.getoption("conformance_report") or config.getoption("fp8_xfails"):
        return True
    for arg in config.args:
        target = str(arg).split("::", 1)[0]
        if target == __package__ or target.startswith(f"{__package__}."):
            return True
        path = (config.invocation_params.dir / target).resolve()
        if path == _PKG_DIR or _PKG_DIR in path.parents:
            return True
    return False


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _wants_conformance(config):
        return None
    info = implementation_of(config)
    lines = [f"fp8 conformance: implementation {info.name} (file {info.file}, version {info.version})"]
    if info.missing and info.error is None:
        lines.append(f"fp8 conformance: missing contract functions: {', '.join(info.missing)}")
    if info.error is not None:
        lines.append(f"fp8 conformance: {info.error}")
    return lines


# --------------------------------------------------------------------------- collection


def _is_suite_path(config: pytest.Config, relpath: str) -> bool:
    path = (config.rootpath / relpath).resolve()
    return _PKG_DIR in path.parents


def _clause_of_report(
    config: pytest.Config, nodeid: str, location: tuple[str, Any, str], keywords: Mapping[str, Any]
) -> str | None:
    """The clause of a test of this suite, from its report alone: the node id names the test, the location
    (its file, relative to the rootdir) says whether it is one of this package's, and the keywords carry its
    markers. This works in an xdist controller, which collects nothing itself."""
    state = config.stash[_STATE]
    if nodeid not in state.clause_of_node:
        name = nodeid.rsplit("::", 1)[-1]
        clause = clause_of(name) if _is_suite_path(config, location[0]) else None
        if clause is not None and clause.startswith("G") and "gpu" not in keywords:
            # A G test's CPU twin (stand-in TE, CPU torchao) never gives the G clause's verdict.
            clause += "/cpu"
        state.clause_of_node[nodeid] = clause or ""
    return state.clause_of_node[nodeid] or None


def _unusable_implementation(config: pytest.Config) -> None:
    """An implementation that cannot be imported, or offers none of the five functions, is one clear
    error for the whole run, not one failure per test."""
    info = implementation_of(config)
    if info.error is not None:
        raise pytest.UsageError(
            f"fp8 conformance: the implementation {info.name!r} cannot be checked: {info.error}. "
            "Pass a module offering the contract functions with --fp8-impl MODULE (importable from here)."
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    # Before collecting (seconds of imports), and once: under pytest-xdist the controller collects nothing
    # itself, and the workers need not say it again.
    config = session.config
    if not hasattr(config, "workerinput") and _wants_conformance(config):
        _unusable_implementation(config)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    suite_items = [(item, _clause_of_report(config, item.nodeid, item.location, item.keywords)) for item in items]
    suite_items = [(item, clause) for item, clause in suite_items if clause is not None]
    if not suite_items:
        return
    if not hasattr(config, "workerinput"):
        _unusable_implementation(config)
    if not state.known:
        return
    for item, clause in suite_items:
        assert clause is not None
        entries = [e.text for e in state.known if e.matches(clause, item.nodeid)]
        if entries:
            reason = f"known failure ({', '.join(entries)} in {state.known_file})"
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))


# --------------------------------------------------------------------------- report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A test that failed for want of contract functions says which, as data of its report."""
    outcome = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, MissingContractFunctions):
        outcome.get_result().user_properties.append((MISSING_PROPERTY, list(error.names)))
    elif isinstance(error, Blocked):
        outcome.get_result().user_properties.append((BLOCKED_PROPERTY, error.to_dict()))


def _gpu_split(config: pytest.Config) -> str | None:
    """``gpu`` or ``not gpu`` when the ``-m`` expression is exactly the suite's split of its tests, else None."""
    expression = " ".join(str(config.getoption("markexpr", "") or "").split())
    return expression if expression in ("gpu", "not gpu") else None


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Suite tests left out by a selection, apart from the ``gpu``/``not gpu`` split itself."""
    if not items:
        return
    config = items[0].config
    if _STATE not in config.stash:
        return
    state, split = config.stash[_STATE], _gpu_split(config)
    for item in items:
        clause = _clause_of_report(config, item.nodeid, item.location, item.keywords)
        is_gpu = item.get_closest_marker("gpu") is not None
        if clause is None or (split == "not gpu" and is_gpu) or (split == "gpu" and not is_gpu):
            continue
        state.deselected.add(clause)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under pytest-xdist: the controller learns what each worker's selection left out."""
    state = node.config.stash.get(_STATE, None)
    if state is not None:
        state.deselected.update(getattr(node, "workeroutput", {}).get("fp8_deselected", []))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.pluginmanager.register(_Recorder(session.config), "fp8-conformance-recorder")


class _Recorder:
    """Collects the outcome of every conformance test, phase by phase."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.config.stash[_STATE]
        clause = _clause_of_report(self.config, report.nodeid, report.location, report.keywords)
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


def _not_run(config: pytest.Config, ran: set[str]) -> list[str]:
    """The suite's clauses this session did not run, or ran only in part: every clause that a test of the
    suite names (the G clauses only, for a ``-m gpu`` run), less those that ran in full."""
    state = config.stash[_STATE]
    universe = set(suite_clauses())
    if _gpu_split(config) == "gpu":
        universe = {c for c in universe if c.startswith("G")}
    ran_base = {c.split("/", 1)[0] for c in ran}
    partly = {c for c in state.deselected if c in ran}
    labels = sorted(universe - ran_base) + [f"{c} (in part)" for c in sorted(partly)]
    return sorted(labels, key=clause_sort_key)


def _build(config: pytest.Config) -> dict[str, Any] | None:
    state = config.stash[_STATE]
    if not state.records:
        return None
    records = [(state.clause_of_node[nodeid], rec) for nodeid, rec in state.records.items()]
    results = group_by_clause(records)
    stale = stale_entries(state.known, state.known_outcomes)
    for result in results:
        result.stale = [e.text for e in stale if any(e.matches(result.clause, t.nodeid) for t in result.tests)]
    report = build_report(
        implementation_of(config).describe(),
        results,
        listed=lambda clause: any(e.covers_clause(clause) for e in state.known),
        not_run=_not_run(config, {r.clause for r in results}),
    )
    if state.known_file:
        report["known_failures_file"] = state.known_file
        report["known_failures"] = [e.text for e in state.known]
    return report


def _only_held_blocks_failed(session: pytest.Session) -> bool:
    """Whether every test pytest counted as failed is a blocked test of a clause the known-failures file holds
    (its blocker is listed), and nothing else failed in the session."""
    state = session.config.stash[_STATE]
    report = _build(session.config) if state.known else None
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


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = _build(config)
    if report is None or os.environ.get(NO_TABLE_ENV):  # the runner prints it instead
        return
    terminalreporter.write_sep("=", "FP8 conformance by clause")
    for line in format_table(report, width=max(140, terminalreporter._tw.fullwidth)):
        terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    config = session.config
    state = config.stash[_STATE]
    stale = stale_entries(state.known, state.known_outcomes)
    if stale and session.exitstatus == 0:
        # A known failure that passes fails the run, so that the file cannot go stale.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and _only_held_blocks_failed(session):
        # A clause blocked by a listed clause need not be listed itself: its failed tests hold the line too.
        session.exitstatus = pytest.ExitCode.OK
    if hasattr(config, "workeroutput"):  # an xdist worker: sent to the controller when the session ends
        config.workeroutput["fp8_deselected"] = sorted(state.deselected)
    yield
    path = config.getoption("conformance_report", None)
    if not path:
        return
    report = _build(config) or build_report(implementation_of(config).describe(), [])
    write_report(path, report)


__all__ = ["DEFAULT_IMPL", "IMPL_ENV_VAR", "NO_TABLE_ENV", "implementation_of"]
