"""pytest plugin of the FP8 conformance suite.

Loaded in every pytest session through the ``pytest11`` entry point, so everything here is cheap
and touches only the suite's own tests (items collected from this package whose name carries a
clause id, ``test_c9d_...``):

- ``--fp8-impl MODULE`` (else ``$FP8REF_IMPL``, else ``fp8ref``) chooses the implementation; the
  session fixture ``impl`` imports it; the report header names its module, file and version.
- Isolation around every conformance test: ``os.environ``, accelerate's process-wide state, and the
  ``Accelerator`` class (an implementation's ``patch_accelerator_for_fp8`` patches it) are put back
  after the test, so results do not depend on the order of tests.
- ``--conformance-report PATH`` writes a JSON report per clause, and the terminal summary ends with
  the clause table.
- Hypothesis profiles ``ci`` (derandomized, no database) and ``dev``; ``ci`` is loaded when the
  ``CI`` environment variable is set and no ``--hypothesis-profile`` was given.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import types
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .helpers import CONTRACT_FUNCTIONS, restore_environ
from .report import CaseRecord, all_passed, build_report, clause_of, format_table, group_by_clause

DEFAULT_IMPL = "fp8ref"
IMPL_ENV_VAR = "FP8REF_IMPL"
_PKG_DIR = Path(__file__).resolve().parent

HYPOTHESIS_CI_EXAMPLES = 300
HYPOTHESIS_DEV_EXAMPLES = 30


def _register_hypothesis_profiles() -> None:
    try:
        from hypothesis import settings
    except ImportError:  # hypothesis is only needed when the suite runs
        return
    settings.register_profile(
        "ci", max_examples=HYPOTHESIS_CI_EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True
    )
    settings.register_profile("dev", max_examples=HYPOTHESIS_DEV_EXAMPLES, deadline=None)


# Registered at import, before hypothesis' own plugin loads a profile named by --hypothesis-profile.
_register_hypothesis_profiles()


@dataclass
class _SessionState:
    impl_name: str
    clause_of_node: dict[str, str] = field(default_factory=dict)
    records: dict[str, CaseRecord] = field(default_factory=dict)
    implementation: dict[str, Any] | None = None


_STATE = pytest.StashKey[_SessionState]()
_SAVED = pytest.StashKey[dict[str, Any]]()


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


def _impl_name(config: pytest.Config) -> str:
    name = config.getoption("fp8_impl") or os.environ.get(IMPL_ENV_VAR) or DEFAULT_IMPL
    return str(name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device of compute capability >= 8.9; skipped with the reason elsewhere"
    )
    config.stash[_STATE] = _SessionState(impl_name=_impl_name(config))
    if os.environ.get("CI") and not config.getoption("hypothesis_profile", None):
        try:
            from hypothesis import settings
        except ImportError:
            return
        settings.load_profile("ci")


# --------------------------------------------------------------------------- the implementation


def describe_implementation(name: str) -> dict[str, Any]:
    """Module name, file and version of the implementation (or the import error)."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # reported, not raised: the header must still print
        return {"module": name, "file": None, "version": None, "error": f"{type(exc).__name__}: {exc}"}
    missing = [f for f in CONTRACT_FUNCTIONS if not callable(getattr(module, f, None))]
    info: dict[str, Any] = {
        "module": name,
        "file": getattr(module, "__file__", None),
        "version": _version_of(module),
    }
    if missing:
        info["error"] = f"missing contract functions: {', '.join(missing)}"
    return info


def _version_of(module: types.ModuleType) -> str | None:
    top = module.__name__.split(".", 1)[0]
    for candidate in (module, sys.modules.get(top)):
        version = getattr(candidate, "__version__", None)
        if isinstance(version, str):
            return version
    try:
        dists = importlib.metadata.packages_distributions().get(top, [])
        return importlib.metadata.version(dists[0]) if dists else None
    except Exception:
        return None


def _implementation(config: pytest.Config) -> dict[str, Any]:
    state = config.stash[_STATE]
    if state.implementation is None:
        state.implementation = describe_implementation(state.impl_name)
    return state.implementation


def _wants_conformance(config: pytest.Config) -> bool:
    if config.getoption("fp8_impl") or config.getoption("conformance_report"):
        return True
    return any("conformance" in str(arg) for arg in config.args)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _wants_conformance(config):
        return None
    info = _implementation(config)
    line = f"fp8 conformance: implementation {info['module']} (file {info['file']}, version {info['version']})"
    return [line] + ([f"fp8 conformance: {info['error']}"] if "error" in info else [])


@pytest.fixture(scope="session")
def impl_name(pytestconfig: pytest.Config) -> str:
    """The dotted name of the implementation under test."""
    return pytestconfig.stash[_STATE].impl_name


@pytest.fixture(scope="session")
def impl(pytestconfig: pytest.Config) -> types.ModuleType:
    """The implementation under test: a module offering the five contract functions."""
    name = pytestconfig.stash[_STATE].impl_name
    error: str | None = None
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        error = f"cannot import the implementation {name!r}: {type(exc).__name__}: {exc}"
    if error is not None:
        pytest.fail(error, pytrace=False)
    missing = [f for f in CONTRACT_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        pytest.fail(f"{name} does not offer the contract functions {', '.join(missing)}", pytrace=False)
    return module


@pytest.fixture(scope="session")
def standin_te_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the stand-in ``transformer_engine`` (not on ``sys.path``: tests put it there
    with :func:`conformance.helpers.standin_te`). It only lets accelerate build TE recipes on a
    machine without TE; it never serves a G clause."""
    from .helpers import write_standin_te

    return write_standin_te(tmp_path_factory.mktemp("standin_te"))


# --------------------------------------------------------------------------- collection and isolation


def _is_suite_item(item: pytest.Item) -> bool:
    path = getattr(item, "path", None)
    return path is not None and _PKG_DIR in Path(path).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    for item in items:
        clause = clause_of(getattr(item, "originalname", None) or item.name)
        if clause is not None and _is_suite_item(item):
            if clause.startswith("G") and item.get_closest_marker("gpu") is None:
                # A G test's CPU twin (stand-in TE, CPU torchao) never gives the G clause's verdict.
                clause += "/cpu"
            state.clause_of_node[item.nodeid] = clause


#: Modules whose namespaces an implementation's patch may change (Accelerator, convert_model, ...).
_PATCHABLE_MODULES = (
    "accelerate",
    "accelerate.accelerator",
    "accelerate.utils",
    "accelerate.utils.ao",
    "accelerate.utils.transformer_engine",
)


def _accelerate_snapshot() -> dict[str, Any]:
    import accelerate.accelerator

    modules = {name: importlib.import_module(name) for name in _PATCHABLE_MODULES}
    cls = accelerate.accelerator.Accelerator
    return {
        "class": cls,
        "class_dict": dict(vars(cls)),
        "modules": {name: (mod, dict(vars(mod))) for name, mod in modules.items()},
    }


def _restore_namespace(target: Any, original: dict[str, Any]) -> None:
    """Put back what ``target``'s namespace held; names added since are removed, except submodules
    that an import added to a package (they belong to ``sys.modules`` too)."""
    current = vars(target)
    for name in [n for n in current if n not in original]:
        if not isinstance(current[name], types.ModuleType):
            delattr(target, name)
    for name, value in original.items():
        if name in ("__dict__", "__weakref__"):
            continue
        if current.get(name, _ABSENT) is not value:
            setattr(target, name, value)


_ABSENT = object()


def _restore_accelerate(saved: dict[str, Any]) -> None:
    for module, namespace in saved["modules"].values():
        _restore_namespace(module, namespace)
    _restore_namespace(saved["class"], saved["class_dict"])
    _reset_accelerate_state()


def _reset_accelerate_state() -> None:
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    PartialState._reset_state()
    GradientState._reset_state()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if item.nodeid in item.config.stash[_STATE].clause_of_node:
        _reset_accelerate_state()
        item.stash[_SAVED] = {
            "environ": dict(os.environ),
            "sys_path": list(sys.path),
            "accelerate": _accelerate_snapshot(),
        }
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    saved = item.stash.get(_SAVED, None)
    if saved is not None:
        restore_environ(saved["environ"])
        sys.path[:] = saved["sys_path"]
        _restore_accelerate(saved["accelerate"])


# --------------------------------------------------------------------------- report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.pluginmanager.register(_Recorder(session.config), "fp8-conformance-recorder")


class _Recorder:
    """Collects the outcome of every conformance test, phase by phase."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.config.stash[_STATE]
        clause = state.clause_of_node.get(report.nodeid)
        if clause is None:
            return
        record = state.records.setdefault(report.nodeid, CaseRecord(report.nodeid))
        if report.passed:
            outcome, message = "passed", None
        elif report.skipped:
            outcome, message = "skipped", _skip_reason(report)
        else:
            outcome = "failed" if report.when == "call" else "error"
            message = _failure_message(report)
        record.update(outcome, message, report.duration)


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "failed"


def _build(config: pytest.Config) -> dict[str, Any] | None:
    state = config.stash[_STATE]
    if not state.records:
        return None
    records = [(state.clause_of_node[nodeid], rec) for nodeid, rec in state.records.items()]
    return build_report(_implementation(config), group_by_clause(records))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = _build(config)
    if report is None or os.environ.get("FP8REF_CONFORMANCE_NO_TABLE"):  # the runner prints it instead
        return
    terminalreporter.write_sep("=", "FP8 conformance by clause")
    for line in format_table(report, width=max(140, terminalreporter._tw.fullwidth)):
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("conformance_report", None)
    if not path:
        return
    from .report import write_report

    report = _build(session.config) or build_report(_implementation(session.config), [])
    write_report(path, report)


__all__ = ["DEFAULT_IMPL", "IMPL_ENV_VAR", "all_passed", "describe_implementation"]
