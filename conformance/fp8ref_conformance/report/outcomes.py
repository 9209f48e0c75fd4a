"""The outcome of one test, from its pytest report: passed, known (a listed failure, run as an xfail), skipped,
blocked (another clause's broken behaviour kept it from its check: carried as data in ``user_properties``, see
:mod:`..kit.verdicts`), missing (it needed contract functions the implementation lacks: also data), failed (in its
call) or error (in its setup or teardown); with the message the clause table shows.

``missing`` and ``blocked`` stay what they are when the test is listed in a known-failures file (run as an
xfail): the listing holds the line, it does not turn them into ``known``. Whether the test was listed travels
alongside (:class:`PhaseOutcome`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ..implementation import MISSING_PROPERTY
from ..kit.verdicts import BLOCKED_PROPERTY


@dataclass(frozen=True)
class PhaseOutcome:
    """One phase's outcome: its name, message, missing functions, block (``{"clause", "reason"}``) and whether
    the test was listed as a known failure."""

    outcome: str
    message: str | None = None
    missing: list[str] = field(default_factory=list)
    blocked_by: dict[str, str] | None = None
    listed: bool = False


def outcome_of_report(report: pytest.TestReport) -> PhaseOutcome:
    """The outcome of one phase's report."""
    wasxfail = getattr(report, "wasxfail", None)
    listed = wasxfail is not None
    missing = _missing_of(report)
    blocked = _blocked_of(report)
    if report.passed:
        return PhaseOutcome("passed", None, missing, None, listed)
    if missing:
        return PhaseOutcome("missing", _failure_message(report), missing, None, listed)
    if blocked is not None:
        return PhaseOutcome("blocked", f"blocked by {blocked['clause']}: {blocked['reason']}", [], blocked, listed)
    if report.skipped and listed:
        return PhaseOutcome("known", f"{wasxfail}: {_failure_message(report)}", [], None, True)
    if report.skipped:
        return PhaseOutcome("skipped", _skip_reason(report))
    return PhaseOutcome("failed" if report.when == "call" else "error", _failure_message(report))


def _properties(report: pytest.TestReport, key: str) -> list[Any]:
    return [value for name, value in report.user_properties if name == key]


def _missing_of(report: pytest.TestReport) -> list[str]:
    return [str(name) for names in _properties(report, MISSING_PROPERTY) for name in names]


def _blocked_of(report: pytest.TestReport) -> dict[str, str] | None:
    found = _properties(report, BLOCKED_PROPERTY)
    return {"clause": str(found[-1]["clause"]), "reason": str(found[-1]["reason"])} if found else None


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "failed"
