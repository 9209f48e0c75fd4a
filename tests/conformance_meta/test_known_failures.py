"""The known-failures file (``--fp8-xfails``), run as an adopter would: the suite against
``broken/fp8broken_two_clauses.py``, which fails C1 and C3 and passes C2. The four sessions share one child
process (:mod:`.suite_runs`); each runs only the few tests of those clauses that the assertions need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fp8ref_conformance
from fp8ref_conformance.report.known import KnownFailuresError, load_known_failures

from .suite_runs import SuiteResult, SuiteRun, run_suites

BROKEN_DIR = Path(__file__).resolve().parent / "broken"
IMPL = "fp8broken_two_clauses"
#: One cheap test group per clause: C1 and C3 fail for this module, C2 passes.
SELECT = "c1_fp8_false or c3_create or c2_create"
#: Only the installed file holding those tests is collected: importing every test module costs seconds.
SUITE_FILE = str(Path(fp8ref_conformance.__file__).resolve().parent / "test_c01_c04_args.py")
C3_TEST = "test_c01_c04_args.py::test_c3_create_rejects_invalid_backend"


#: The known-failures file of each session, by session key.
ENTRIES = {
    "both-listed": f"# today's failures\nc1  # lower case works\n\n{C3_TEST}\n",
    "one-unlisted": "C1\n",
    "stale": "C1\nC2\nC3\n",
    "typo": "C1\nC3\nC9g\n",
}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteResult]:
    work = tmp_path_factory.mktemp("known-failures")
    runs = []
    for key, entries in ENTRIES.items():
        xfails = work / f"{key}.txt"
        xfails.write_text(entries)
        args = (SUITE_FILE, "-m", "not gpu", "-k", SELECT, "-p", "no:cacheprovider", "--fp8-impl", IMPL)
        runs.append(SuiteRun(key, (*args, "--fp8-xfails", str(xfails)), {}, (str(BROKEN_DIR),)))
    return run_suites(runs, work / "runs")


def outcomes(report: dict[str, Any] | None) -> dict[str, str]:
    assert report is not None, "no report written"
    return {clause: data["outcome"] for clause, data in report["clauses"].items()}


def test_known_failures_both_listed_pass(sessions: dict[str, SuiteResult]) -> None:
    """Both failures listed (one as a clause id, one as a test node id): the run passes, and the two clauses
    are ``known``, distinct from passed and failed, in the table and the JSON report."""
    result = sessions["both-listed"]
    report = result.report
    assert outcomes(report) == {"C1": "known", "C2": "passed", "C3": "known"}
    assert report is not None and report["all_passed"] is True
    assert report["summary"]["known"] == 2
    assert result.ret == pytest.ExitCode.OK, result.stdout[-3000:]
    out = result.stdout
    assert any(line.startswith("C1 ") and "KNOWN" in line and "[SPEC.md#c1]" in line for line in out.splitlines())
    # Listed failures are not conformance, and a -k selection is not the whole suite.
    assert (
        "NOT VERIFIED (only a subset of the clauses ran): 1 clause passed, 2 known; known: C1, C3; not run: C0" in out
    )


def test_known_failures_one_unlisted_failure_fails(sessions: dict[str, SuiteResult]) -> None:
    result = sessions["one-unlisted"]
    assert outcomes(result.report) == {"C1": "known", "C2": "passed", "C3": "failed"}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "DOES NOT CONFORM" in result.stdout


def test_known_failures_listed_clause_that_passes_fails(sessions: dict[str, SuiteResult]) -> None:
    """Strict: an entry none of whose tests fails any more fails the run, saying it can be removed."""
    result = sessions["stale"]
    report = result.report
    assert outcomes(report) == {"C1": "known", "C2": "failed", "C3": "known"}
    assert report is not None
    message = report["clauses"]["C2"]["first_failure"]
    assert "listed as a known failure ('C2') but passes now: remove the entry" in message
    assert report["clauses"]["C2"]["stale_known_failures"] == ["C2"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "remove the entry" in result.stdout


def test_known_failures_typo_is_an_error_naming_it(sessions: dict[str, SuiteResult]) -> None:
    result = sessions["typo"]
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "line 3: 'C9g' names no clause of the suite" in result.stderr
    assert result.report is None


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("C18", "'C18' names no clause of the suite"),
        ("test_c09_filter.py::test_c9d_no_such_test", "no test test_c9d_no_such_test in test_c09_filter.py"),
        ("test_c99_nothing.py::test_c9d_x", "no test test_c9d_x in test_c99_nothing.py"),
        ("filter", "is neither a clause id (C9d, G3/cpu) nor a test of the suite"),
        ("test_c9d_no_such_test[x]", "no test test_c9d_no_such_test"),
        ("C9d/cpu", "only the G clauses have CPU twins"),
    ],
)
def test_known_failures_file_rejects_entries_that_name_nothing(tmp_path: Path, entry: str, error: str) -> None:
    path = tmp_path / "xfails.txt"
    path.write_text(f"C9d\n{entry}  # comment\n")
    with pytest.raises(KnownFailuresError, match="line 2") as info:
        load_known_failures(path)
    assert error in str(info.value)


def test_known_failures_file_accepts_clause_groups_and_node_ids(tmp_path: Path) -> None:
    path = tmp_path / "xfails.txt"
    test = "test_c09_filter.py::test_c9d_eligible_linear_layers_are_converted"
    path.write_text(f"# header\n\nC13\nconformance/{test}[a]\n")
    c13, node = load_known_failures(path)
    assert c13.matches("C13a", "x.py::t") and c13.matches("C13", "x.py::t") and not c13.matches("C1", "x.py::t")
    assert node.matches("C9d", f"fp8ref_conformance/{test}[a]")
    assert not node.matches("C9d", f"{test}[b]")


def test_known_failures_errors_name_the_clause_table_s_ranges(tmp_path: Path) -> None:
    """The ranges an error names come from the clause table, so they follow it when a clause is added."""
    from fp8ref_conformance import clauses

    twins = [c.id for c in clauses.clauses() if c.cpu_twin]
    for entry, expected in (
        ("C18", f"(clauses are {clauses.range_text()})"),
        ("C9d/cpu", f"({twins[0]}/cpu..{twins[-1]}/cpu)"),
    ):
        path = tmp_path / "xfails.txt"
        path.write_text(f"{entry}\n")
        with pytest.raises(KnownFailuresError) as info:
            load_known_failures(path)
        assert expected in str(info.value)
