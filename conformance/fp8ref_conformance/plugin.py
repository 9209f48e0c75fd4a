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
that a run of a subset never reads as conformance. What the hooks record, and the report built from it, is
:mod:`.report.session`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import Any

import pytest

from .implementation import MISSING_PROPERTY, ImplementationInfo, MissingContractFunctions, load_implementation
from .kit.verdicts import BLOCKED_PROPERTY, Blocked
from .report.known import KnownFailuresError, load_known_failures, stale_entries
from .report.records import write_report
from .report.render import format_table
from .report.session import (
    PKG_DIR,
    STATE,
    Recorder,
    SessionState,
    build,
    build_report,
    clause_of_report,
    gpu_split,
    only_held_blocks_failed,
)

DEFAULT_IMPL = "fp8ref"
IMPL_ENV_VAR = "FP8REF_IMPL"
#: Set by ``fp8ref check`` in its child so that the table is printed once, by the runner.
NO_TABLE_ENV = "FP8REF_CONFORMANCE_NO_TABLE"


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
    state = SessionState(impl_name=str(name))
    config.stash[STATE] = state
    path = config.getoption("fp8_xfails", None)
    if path:
        try:
            state.known = load_known_failures(path)
        except KnownFailuresError as exc:
            raise pytest.UsageError(str(exc)) from None
        state.known_file = str(path)


def implementation_of(config: pytest.Config) -> ImplementationInfo:
    """The implementation chosen for this session, imported once per process (the suite's conftest asks here)."""
    if STATE not in config.stash:
        raise pytest.UsageError(
            "the FP8 conformance suite needs its pytest plugin 'fp8ref_conformance', which is not loaded: "
            "install fp8ref (pip install 'fp8ref[test]') and do not block it with -p no:fp8ref_conformance"
        )
    state = config.stash[STATE]
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
        if path == PKG_DIR or PKG_DIR in path.parents:
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
    state = config.stash[STATE]
    suite_items = [(item, clause_of_report(config, item.nodeid, item.location, item.keywords)) for item in items]
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


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Suite tests left out by a selection, apart from the ``gpu``/``not gpu`` split itself."""
    if not items:
        return
    config = items[0].config
    if STATE not in config.stash:
        return
    state, split = config.stash[STATE], gpu_split(config)
    for item in items:
        clause = clause_of_report(config, item.nodeid, item.location, item.keywords)
        is_gpu = item.get_closest_marker("gpu") is not None
        if clause is None or (split == "not gpu" and is_gpu) or (split == "gpu" and not is_gpu):
            continue
        state.deselected.add(clause)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under pytest-xdist: the controller learns what each worker's selection left out."""
    state = node.config.stash.get(STATE, None)
    if state is not None:
        state.deselected.update(getattr(node, "workeroutput", {}).get("fp8_deselected", []))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.pluginmanager.register(Recorder(session.config), "fp8-conformance-recorder")


def _describer(config: pytest.Config) -> Callable[[], dict[str, Any]]:
    """The description of the implementation, imported only when asked (another project's session never asks)."""
    return lambda: implementation_of(config).describe()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = build(config, _describer(config))
    if report is None or os.environ.get(NO_TABLE_ENV):  # the runner prints it instead
        return
    terminalreporter.write_sep("=", "FP8 conformance by clause")
    for line in format_table(report, width=max(140, terminalreporter._tw.fullwidth)):
        terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    config = session.config
    state = config.stash[STATE]
    stale = stale_entries(state.known, state.known_outcomes)
    if stale and session.exitstatus == 0:
        # A known failure that passes fails the run, so that the file cannot go stale.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and only_held_blocks_failed(session, _describer(config)):
        # A clause blocked by a listed clause need not be listed itself: its failed tests hold the line too.
        session.exitstatus = pytest.ExitCode.OK
    if hasattr(config, "workeroutput"):  # an xdist worker: sent to the controller when the session ends
        config.workeroutput["fp8_deselected"] = sorted(state.deselected)
    yield
    path = config.getoption("conformance_report", None)
    if not path:
        return
    describe = _describer(config)
    report = build(config, describe) or build_report(describe(), [])
    write_report(path, report)


__all__ = ["DEFAULT_IMPL", "IMPL_ENV_VAR", "NO_TABLE_ENV", "implementation_of"]
