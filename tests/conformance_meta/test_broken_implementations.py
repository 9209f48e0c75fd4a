"""The conformance suite must give each broken or partial implementation the verdicts the module declares, and
pass a second correct implementation written independently of fp8ref.

Each module of ``broken/`` is fp8ref with one seed bug put back (or, in ``partial/``, fp8ref with functions left
out), ending with its ``EXPECTED`` (:mod:`.expectations`): the clauses it fails, those that must still pass or say
``missing``, the tests named, the ``-k`` selection of its one suite session. The suite runs against each as a user
runs it (``pytest --pyargs fp8ref_conformance --fp8-impl MODULE``); the JSON report and the terminal table then
say what the module declared. All the sessions are one batch (:mod:`.suite_runs`: one fork each of this process,
which has torch and the suite imported once).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fp8ref_conformance import clauses

from .expectations import (
    CORRECT_DIR,
    META,
    Declared,
    declared,
    implementation_files,
    outcomes_named,
    run_of,
    session_of,
)
from .suite_runs import SuiteResult, SuiteRun, run_suites

DECLARED = declared()


@pytest.fixture(scope="module")  # one batch per module: run with --dist loadfile under pytest-xdist
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteResult]:
    return run_suites([run_of(case) for case in DECLARED], tmp_path_factory.mktemp("declared-runs"))


def _tests(report: dict[str, object]) -> dict[str, str]:
    """Outcome of every test of the report, by its name (node id without the module)."""
    clauses: dict[str, dict[str, list[dict[str, str]]]] = report["clauses"]  # type: ignore[assignment]
    return {test["nodeid"].rsplit("::", 1)[-1]: test["outcome"] for data in clauses.values() for test in data["tests"]}


@pytest.mark.parametrize("case", DECLARED, ids=[c.module for c in DECLARED])
def test_suite_gives_the_declared_verdicts(results: dict[str, SuiteResult], case: Declared) -> None:
    result, expected, module = results[case.module], case.expected, case.module
    report = result.report
    assert report is not None, f"no report written:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    assert report["implementation"]["module"] == module
    assert report["implementation"]["file"].startswith(str(case.folder))
    clauses = report["clauses"]
    outcomes = {clause: data["outcome"] for clause, data in clauses.items()}
    for clause in expected.fails:
        assert outcomes.get(clause) == "failed", f"{clause} should fail for {module}: {outcomes}"
        assert clauses[clause]["first_failure"], "a failed clause names its first failure"
    for clause in expected.passes:
        assert outcomes.get(clause) == "passed", f"{clause} should pass for {module}: {clauses.get(clause)}"
    for clause, names in expected.missing.items():
        data = clauses.get(clause, {})
        assert data.get("outcome") == "missing", f"{clause} should be missing for {module}: {data}"
        assert data["missing"] == list(names) and data["first_failure"] == f"missing: {', '.join(names)}", data
    tests = _tests(report)
    for outcome, names in (("failed", expected.failing_tests), ("passed", expected.passing_tests)):
        named = {test: got for name in names for test, got in outcomes_named(name, tests).items()}
        wrong = {test: got for test, got in named.items() if got != outcome}
        assert not wrong, f"these tests should have {outcome} for {module}: {wrong}"
    for clause, text in expected.says.items():
        assert text in (clauses[clause]["first_failure"] or ""), clauses[clause]["first_failure"]
    assert report["all_passed"] is False
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout[-2000:]
    out = result.stdout
    assert f"fp8 conformance: implementation {module} (file {case.folder}" in out, "report header"
    assert "FP8 conformance by clause" in out and "DOES NOT CONFORM" in out, "terminal table"
    first, word = (sorted(expected.fails)[0], "FAILED") if expected.fails else (sorted(expected.missing)[0], "MISSING")
    assert any(line.startswith(f"{first} ") and word in line for line in out.splitlines()), out[-2000:]


def test_every_implementation_module_is_judged() -> None:
    """A module of ``broken/`` or ``partial/`` without ``EXPECTED`` is used by name in a scenario test of its own
    (``test_verdicts.py``, ``test_partial_implementations.py``): none is left unjudged."""
    scenarios = "\n".join(path.read_text() for path in META.glob("test_*.py") if path.name != Path(__file__).name)
    declaring = {case.module for case in DECLARED}
    unjudged = [
        path.stem for path in implementation_files() if path.stem not in declaring and path.stem not in scenarios
    ]
    assert not unjudged, f"neither declared nor used by a scenario test: {unjudged}"
    assert len(declaring) >= 34, sorted(declaring)


def test_a_declaration_is_read_as_a_literal_without_importing(tmp_path: Path) -> None:
    """``EXPECTED`` is data: a name or call in it is refused, not evaluated; a field the meta-tests do not know is
    refused; a declaration that fails nothing would pass the suite and is refused."""
    from .expectations import declaration_of

    module = tmp_path / "fp8broken_x.py"
    module.write_text("import sys\nsys.exit(3)\nEXPECTED = {'select': 'c9', 'fails': ('C9d',)}\n")
    assert declaration_of(module) is not None and declaration_of(module).fails == ("C9d",)  # type: ignore[union-attr]
    for wrong, error in [
        ("{'select': 'c9', 'fails': FAILS}", ValueError),
        ("{'select': 'c9', 'fail': ('C9d',)}", TypeError),
        ("{'select': 'c9', 'passes': ('C9d',)}", ValueError),
    ]:
        module.write_text(f"EXPECTED = {wrong}\n")
        with pytest.raises(error):
            declaration_of(module)


def test_suite_passes_an_independent_correct_implementation(tmp_path: Path) -> None:
    """The whole CPU suite (every row of the clause table's CPU run) against ``correct/fp8alt_minimal.py``,
    which shares no code with fp8ref: the suite judges behaviour, not fp8ref's way of doing things."""
    args, env = session_of("fp8alt_minimal", "c", via_env=False, children=True)
    result = run_suites([SuiteRun("fp8alt_minimal", args, env, (str(CORRECT_DIR),))], tmp_path)["fp8alt_minimal"]
    report = result.report
    assert report is not None, f"no report written:\n{result.stdout[-3000:]}"
    failed = {
        clause: data["first_failure"] for clause, data in report["clauses"].items() if data["outcome"] != "passed"
    }
    assert failed == {}
    expected = set(clauses.cpu_rows())
    assert set(report["clauses"]) == expected, sorted(set(report["clauses"]) ^ expected)
    assert report["all_passed"] is True and result.ret == pytest.ExitCode.OK


def test_a_name_with_star_stands_for_every_parametrization_that_ran() -> None:
    ran = {"test_a[x]": "passed", "test_a[y]": "failed", "test_ab[x]": "failed", "test_b": "passed"}
    assert outcomes_named("test_a[*]", ran) == {"test_a[x]": "passed", "test_a[y]": "failed"}
    assert outcomes_named("test_b", ran) == {"test_b": "passed"}
    assert outcomes_named("test_c[*]", ran) == {"test_c[*]": None}, "a name that matches nothing did not run"
    assert outcomes_named("test_c", ran) == {"test_c": None}
