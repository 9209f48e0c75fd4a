"""A module that offers only some of the five functions is judged clause by clause: a clause whose tests
need a missing function reports ``missing: <function>`` (once, in its table line), every other clause is
judged on its merits, and the JSON report lists the missing functions. A module that offers none of the
five, or cannot be imported, is one clear error. One session per module, on one cheap test group per clause
that the assertions name, all in one child process (:mod:`.suite_runs`)."""

from __future__ import annotations

from typing import Any

import pytest

from .expectations import PARTIAL_DIR, scenario_run
from .suite_runs import SuiteResult, run_suites

PATCH = "patch_accelerator_for_fp8"


#: The clauses judged on their merits for a module without the patch (fp8ref's four functions pass them).
NO_PATCH_MERITS = (
    "c1_fp8_false or c2_create or c3_create or c4_te_missing_in or c5_default or c6_flag_false"
    " or c7_te_gives or c8a or c8e or c9f or c10_prepare or c12a_warns_when_accelerator"
)
SESSIONS = {
    "fp8partial_no_patch": f"{NO_PATCH_MERITS} or c13c or c13e or c14_trainer_converts",
    "fp8partial_kwargs_only": "c1_fp8_false or c5_default or c9f or c2 or c8a or c13c or c15",
    "fp8partial_nothing": "c1_",
}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteResult]:
    runs = [scenario_run(impl, impl, PARTIAL_DIR, select) for impl, select in SESSIONS.items()]
    return run_suites(runs, tmp_path_factory.mktemp("partial-runs"))


def _report(result: SuiteResult) -> dict[str, Any]:
    assert result.report is not None, result.stdout[-3000:]
    return result.report


def _table_lines(result: SuiteResult) -> dict[str, str]:
    lines = result.stdout.split("FP8 conformance by clause", 1)[1].splitlines()
    return {line.split()[0]: line for line in lines if line[:1] in ("C", "G") and len(line.split()) > 1}


def test_module_without_the_patch_is_judged_clause_by_clause(sessions: dict[str, SuiteResult]) -> None:
    """C1 to C12 are judged on their merits (fp8ref's four functions pass them); C13 and C14 fail, naming
    the patch."""
    result = sessions["fp8partial_no_patch"]
    report = _report(result)
    outcomes = {clause: data["outcome"] for clause, data in report["clauses"].items()}
    judged = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8a", "C8e", "C9f", "C10", "C12a"]
    assert {c: outcomes.get(c) for c in judged} == dict.fromkeys(judged, "passed")
    assert {c: outcomes.get(c) for c in ("C13c", "C13e", "C14")} == dict.fromkeys(("C13c", "C13e", "C14"), "missing")
    assert report["implementation"]["missing"] == [PATCH]
    for clause in ("C13c", "C13e", "C14"):
        assert report["clauses"][clause]["missing"] == [PATCH]
        assert report["clauses"][clause]["first_failure"] == f"missing: {PATCH}"
        assert report["clauses"][clause]["spec"] == f"SPEC.md#{clause.lower()}"
        assert report["clauses"][clause]["spec_file"].endswith(f"SPEC.md#{clause.lower()}")
    table = _table_lines(result)
    assert table["C13c"].count(f"missing: {PATCH}") == 1 and "[SPEC.md#c13c]" in table["C13c"]
    assert "MISSING" in table["C14"] and "PASSED" in table["C9f"]
    assert f"fp8 conformance: missing contract functions: {PATCH}" in result.stdout
    assert report["all_passed"] is False and result.ret == pytest.ExitCode.TESTS_FAILED


def test_module_with_only_kwargs_and_mixed_precision(sessions: dict[str, SuiteResult]) -> None:
    """Only ``create_fp8_kwargs`` and ``get_fp8_mixed_precision``: the clauses that need no more (C1, C5, C9f)
    pass; C2 (verify), C8a and C13c (configure) and C15 (its workers configure) report what they miss."""
    result = sessions["fp8partial_kwargs_only"]
    report = _report(result)
    data = report["clauses"]
    assert {c: data[c]["outcome"] for c in ("C1", "C5", "C9f")} == dict.fromkeys(("C1", "C5", "C9f"), "passed")
    assert data["C2"]["outcome"] == "missing" and data["C2"]["counts"]["passed"] > 0, "C2's create tests pass"
    assert data["C2"]["missing"] == ["configure_fp8_environment", "verify_fp8_status"]
    for clause in ("C8a", "C13c", "C15"):
        assert data[clause]["outcome"] == "missing"
        assert data[clause]["first_failure"] == "missing: configure_fp8_environment"
    assert report["implementation"]["missing"] == [
        "configure_fp8_environment",
        "verify_fp8_status",
        "patch_accelerator_for_fp8",
    ]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_module_with_none_of_the_functions_is_one_clear_error(sessions: dict[str, SuiteResult]) -> None:
    result = sessions["fp8partial_nothing"]
    report = _report(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "fp8partial_nothing offers none of the contract functions" in errors[0], errors
    assert report["clauses"] == {} and "offers none" in report["implementation"]["error"]
