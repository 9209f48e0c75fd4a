"""The outcome of one test, from its pytest report: passed, known (a listed failure, run as an xfail), skipped,
missing (it needed contract functions the implementation lacks: carried as data in ``user_properties``), failed
(in its call) or error (in its setup or teardown); with the message the clause table shows."""

from __future__ import annotations

import pytest

from ..implementation import MISSING_PROPERTY


def outcome_of_report(report: pytest.TestReport) -> tuple[str, str | None, list[str]]:
    """``(outcome, message, missing functions)`` of one phase's report."""
    wasxfail = getattr(report, "wasxfail", None)
    missing = _missing_of(report)
    if report.passed:
        return "passed", None, missing
    if report.skipped and wasxfail is not None:
        return "known", f"{wasxfail}: {_failure_message(report)}", missing
    if report.skipped:
        return "skipped", _skip_reason(report), missing
    outcome = "missing" if missing else ("failed" if report.when == "call" else "error")
    return outcome, _failure_message(report), missing


def _missing_of(report: pytest.TestReport) -> list[str]:
    return [str(name) for key, names in report.user_properties if key == MISSING_PROPERTY for name in names]  # type: ignore[attr-defined]


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "failed"
