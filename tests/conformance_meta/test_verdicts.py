"""Verdicts other than pass and fail, run as an adopter would: blocked clauses, known failures that hold a block,
a listed missing clause, root causes, the label vocabulary of the known-failures file, and the verdict line.

The sessions share two child processes (:mod:`.suite_runs`): the second runs the suite with the known-failures
file that :func:`write_known_failures_of` wrote from a report of the first (``--write-xfails`` then ``--xfails``).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest

from fp8ref_conformance.report.causes import root_causes
from fp8ref_conformance.report.document import MARKDOWN_BEGIN, MARKDOWN_END
from fp8ref_conformance.report.known import load_known_failures, write_known_failures_of
from fp8ref_conformance.report.records import CaseRecord, ClauseResult
from fp8ref_conformance.report.render import across_table_lines, format_table, markdown_table, verdict_line
from fp8ref_conformance.report.session import build_report
from fp8ref_conformance.runner import child_env, run_check, split_impl
from fp8ref_conformance.spec import SPEC_PATH

from .expectations import BROKEN_DIR as BROKEN
from .expectations import PARTIAL_DIR as PARTIAL
from .expectations import scenario_run
from .suite_runs import SuiteResult, run_suites

#: The clauses whose tests read the all-gather flag (and G3's CPU twin: a label of every kind), the cheap tests of
#: each: C11's real-kernel tests only (rowwise judged, tensorwise blocked).
ALL_GATHER = "c0_backend or c5 or c6 or c8c or c10 or c11_real or c13a or c15 or g3"
#: C6 and the tests it blocks, without a numerics run.
BLOCKED_BY_C6 = "c6 or c15 or c11_real and tensorwise"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteResult]:
    work = tmp_path_factory.mktemp("verdicts")
    listed = work / "c6-and-c11.txt"
    listed.write_text("C6\nC11  # blocked by C6: listing it is allowed\n")
    missing = work / "missing.txt"
    missing.write_text("C13c\n")
    runs = [
        scenario_run("c6", "fp8broken_c6_only", BROKEN, ALL_GATHER),
        scenario_run("crash", "fp8broken_all_gather_crashes", BROKEN, BLOCKED_BY_C6),
        scenario_run("c6-listed", "fp8broken_c6_only", BROKEN, BLOCKED_BY_C6, "--fp8-xfails", str(listed)),
        scenario_run("missing-listed", "fp8partial_no_patch", PARTIAL, "c13c", "--fp8-xfails", str(missing)),
    ]
    results = run_suites(runs, work / "first")
    first = results["c6"].report
    assert first is not None, results["c6"].stdout[-3000:]
    written = work / "written.txt"
    write_known_failures_of(written, "fp8broken_c6_only", first)
    second = [scenario_run("roundtrip", "fp8broken_c6_only", BROKEN, BLOCKED_BY_C6, "--fp8-xfails", str(written))]
    results.update(run_suites(second, work / "second"))
    results["written"] = SuiteResult(0, written.read_text(), None)
    return results


def _report(result: SuiteResult) -> dict[str, Any]:
    assert result.report is not None, f"no report:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    return result.report


def _outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {clause: data["label"] for clause, data in report["clauses"].items()}


def _table(result: SuiteResult) -> dict[str, str]:
    lines = result.stdout.split("FP8 conformance by clause", 1)[1].splitlines()
    return {line.split()[0]: line for line in lines if re.match(r"^[CG]\d+\S*\s+[A-Z]", line)}


def test_c6_broken_blocks_c11_and_c15_and_nothing_else_changes(sessions: dict[str, SuiteResult]) -> None:
    """fp8ref with C6 alone broken: C6 fails, C11 and C15 are blocked by C6 with the reason, every other clause
    these tests touch passes as it does for fp8ref."""
    result = sessions["c6"]
    report = _report(result)
    outcomes = _outcomes(report)
    assert outcomes.pop("C6") == "failed"
    assert outcomes.pop("C11") == "blocked by C6" and outcomes.pop("C15") == "blocked by C6"
    assert outcomes and set(outcomes.values()) == {"passed"}, outcomes
    c11, c15 = report["clauses"]["C11"], report["clauses"]["C15"]
    # Rowwise, whose blocker (C5) passes, is judged on its own merits; tensorwise is blocked.
    assert c11["counts"]["passed"] == 1 and c11["counts"]["blocked"] == 1, "rowwise judged, tensorwise blocked"
    assert "cannot judge tensorwise numerics" in c11["first_failure"] and "blocked by C6" in c11["first_failure"]
    assert c15["counts"] == {**c15["counts"], "blocked": 3, "passed": 0}, "no two-process run is started"
    assert "the flag was dropped" in c15["first_failure"]
    assert [t["blocked_by"]["clause"] for t in c11["tests"] if t["outcome"] == "blocked"] == ["C6"]
    table = _table(result)
    assert "BLOCKED by C6" in table["C11"] and "[SPEC.md#c11]" in table["C11"]
    assert report["all_passed"] is False and result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["root_causes"] == [
        {**report["root_causes"][0], "clause": "C6", "fails": ["C6"], "blocks": ["C11", "C15"], "explained": True}
    ]
    assert "Root causes: 1 defect(s)" in result.stdout and "C6: fails C6; blocks C11, C15" in result.stdout
    assert "DOES NOT CONFORM" in result.stdout and "not run: " in result.stdout


def test_a_crash_of_the_implementation_inside_c11_fails_c11_not_blocked(sessions: dict[str, SuiteResult]) -> None:
    """The module's own ``create_fp8_kwargs`` raises ``KeyError`` with the all-gather flag: C6 fails, and so do
    C11 and C15, on that exception, although C6 is broken too. Never a block."""
    report = _report(sessions["crash"])
    outcomes = _outcomes(report)
    assert (outcomes["C6"], outcomes["C11"], outcomes["C15"]) == ("failed", "failed", "failed"), outcomes
    c11 = report["clauses"]["C11"]
    assert c11["counts"]["blocked"] == 0 and c11["blocked_by"] == []
    assert "KeyError" in c11["first_failure"] and "tensorwise" in c11["first_failure"]
    assert "KeyError" in report["clauses"]["C15"]["first_failure"]
    (cause,) = [c for c in report["root_causes"] if "C11" in c["fails"]]
    assert cause["fails"] == ["C6", "C11", "C15"], "one crash, one defect"


def test_known_failures_hold_a_blocked_clause_through_its_blocker(sessions: dict[str, SuiteResult]) -> None:
    """C6 listed: C6 is known, C15 (not listed) is held by C6's entry, C11 (listed too) stays blocked and is not
    stale. The run passes, and its verdict does not read as conformance."""
    result = sessions["c6-listed"]
    report = _report(result)
    assert _outcomes(report) == {"C6": "known", "C11": "blocked by C6", "C15": "blocked by C6"}
    assert all(report["clauses"][c]["held"] for c in ("C6", "C11", "C15"))
    table = _table(result)
    assert "BLOCKED by C6 (known)" in table["C11"] and "BLOCKED by C6 (known)" in table["C15"]
    assert report["clauses"]["C11"]["stale_known_failures"] == []
    assert report["all_passed"] is True and report["conforms"] is False
    assert result.ret == pytest.ExitCode.OK, result.stdout[-3000:]
    assert "known: C6, C11 (blocked by C6), C15 (blocked by C6)" in result.stdout
    assert "CONFORMS" not in result.stdout.replace("DOES NOT CONFORM", "")


def test_a_listed_missing_clause_stays_missing(sessions: dict[str, SuiteResult]) -> None:
    result = sessions["missing-listed"]
    report = _report(result)
    c13c = report["clauses"]["C13c"]
    assert (c13c["outcome"], c13c["held"], c13c["first_failure"]) == (
        "missing",
        True,
        "missing: patch_accelerator_for_fp8",
    )
    assert all(t["outcome"] == "missing" and t["listed"] for t in c13c["tests"])
    assert "MISSING (known)" in _table(result)["C13c"]
    assert result.ret == pytest.ExitCode.OK and report["all_passed"] is True


def test_write_xfails_then_xfails_is_green(sessions: dict[str, SuiteResult]) -> None:
    """The file written from the C6 run lists what the report showed (C6), says why C11 and C15 are not listed,
    and holds the line: the same run with it passes, C11 and C15 blocked by the listed C6."""
    written = sessions["written"].stdout
    entries = [line for line in written.splitlines() if line and not line.startswith("#")]
    assert entries == ["C6"]
    assert "# C11 is blocked by C6: held by that entry" in written and "# C15 is blocked by C6" in written
    assert "https://" not in written and "SPEC.md" in written
    result = sessions["roundtrip"]
    report = _report(result)
    assert result.ret == pytest.ExitCode.OK, result.stdout[-3000:]
    assert _outcomes(report)["C11"] == "blocked by C6" and _outcomes(report)["C6"] == "known"
    assert report["clauses"]["C11"]["held"] and report["clauses"]["C15"]["held"]


def test_every_label_of_the_table_is_accepted_meaning_what_the_table_meant(
    sessions: dict[str, SuiteResult], tmp_path: Path
) -> None:
    """One label of each kind, copied from the C6 run's table: a clause (C11), a sub-clause (C8c), a CPU twin
    (G3/cpu), the spec section a row cites (SPEC.md#c6), the clause a block names (C6), and a test as the detail
    column names it. Each is accepted and covers exactly the tests of the row it was copied from."""
    result = sessions["c6"]
    report, table = _report(result), _table(result)
    detail = re.search(r"\] (test_c6_\w+\[[^\]]+\]):", table["C6"])
    assert detail is not None, table["C6"]
    blocked_by = re.search(r"BLOCKED by (C\d+)", table["C11"])
    assert blocked_by is not None
    labels = [  # (the row it was copied from, the label)
        ("C11", "C11"),
        ("C8c", "C8c"),
        ("G3/cpu", "G3/cpu"),
        ("C6", table["C6"].split("[", 1)[1].split("]", 1)[0]),  # SPEC.md#c6
        (blocked_by[1], blocked_by[1]),
    ]
    assert labels[3][1] == "SPEC.md#c6" and "G3/cpu" in table
    path = tmp_path / "labels.txt"
    path.write_text("\n".join([*(label for _, label in labels), detail[1]]) + "\n")
    *clause_entries, test_entry = load_known_failures(path)
    everything = [(clause, t["nodeid"]) for clause, data in report["clauses"].items() for t in data["tests"]]
    for (row, _), entry in zip(labels, clause_entries, strict=True):
        covered = {clause for clause, nodeid in everything if entry.matches(clause, nodeid)}
        assert covered == {row}, f"{entry.text!r} covers {covered}, copied from the row {row}"
    node = [nodeid for clause, nodeid in everything if test_entry.matches(clause, nodeid)]
    assert [n.rsplit("::", 1)[1] for n in node] == [detail[1]]
    assert not clause_entries[2].matches("G3", "test_g1_g4_gpu.py::test_g3_x[cuda]"), "G3/cpu is the twin only"


# --------------------------------------------------------------------------- the verdict line and root causes


def _clause(clause: str, *tests: tuple[str, dict[str, Any]]) -> ClauseResult:
    return ClauseResult(
        clause, [CaseRecord(f"t.py::test_{clause.lower()}_{i}", o, **kw) for i, (o, kw) in enumerate(tests)]
    )


def test_verdict_line_words() -> None:
    passed = [_clause(f"C{n}", ("passed", {})) for n in range(1, 4)]
    assert verdict_line(build_report({}, list(passed), not_run=[])) == "CONFORMS: 3 clauses passed"
    known = [*passed[:2], _clause("C3", ("known", {"listed": True}))]
    assert verdict_line(build_report({}, known, not_run=[])).startswith("CONFORMS except 1 known failure: ")
    subset = build_report({}, list(passed), not_run=["C4", "C5 (in part)"])
    assert (
        verdict_line(subset)
        == "NOT VERIFIED (only a subset of the clauses ran): 3 clauses passed; not run: C4, C5 (in part)"
    )
    block = {"blocked_by": {"clause": "C1", "reason": "r"}}
    blocked = [_clause("C1", ("passed", {})), _clause("C2", ("blocked", block))]
    line = verdict_line(build_report({}, blocked, not_run=[]))
    assert line.startswith("DOES NOT CONFORM: 1 clause passed, 1 blocked"), "a block by a passing clause holds nothing"
    missing = [_clause("C1", ("passed", {})), _clause("C13c", ("missing", {"listed": True, "missing": ["p"]}))]
    report = build_report({}, missing, not_run=[])
    assert report["clauses"]["C13c"]["outcome"] == "missing" and report["all_passed"] is True
    assert verdict_line(report).endswith("; known: C13c (missing)")


def test_tables_spell_a_blocking_clause_as_the_known_failures_file_takes_it(tmp_path: Path) -> None:
    """``BLOCKED by C13d`` in the terminal table and across implementations (not ``C13D``), ``blocked by C13d`` in
    the Markdown; the clause named there is a label the known-failures file accepts."""
    block = {"blocked_by": {"clause": "C13d", "reason": "r"}}
    report = build_report(
        {"module": "m"}, [_clause("C13d", ("failed", {"message": "x"})), _clause("C14", ("blocked", block))]
    )
    assert any(line.startswith("C14 ") and "BLOCKED by C13d" in line for line in format_table(report))
    assert "BLOCKED by C13d" in "\n".join(across_table_lines({"m": report, "n": None}))
    assert "| C14 | blocked by C13d | did not run |" in markdown_table({"m": report, "n": None})
    path = tmp_path / "k.txt"
    path.write_text(re.search(r"BLOCKED by (\S+)", "\n".join(format_table(report)))[1] + "\n")  # type: ignore[index]
    assert load_known_failures(path)[0].covers_clause("C13d")


def test_root_causes_group_sub_clauses_crashes_and_missing_functions_and_attach_blocks() -> None:
    te = "ModuleNotFoundError: No module named 'transformer_engine'"
    results = [
        _clause("C13a", ("failed", {"message": "AssertionError: holds TERecipeKwargs"})),
        _clause("C13d", ("failed", {"message": te})),
        _clause("C14", ("blocked", {"blocked_by": {"clause": "C13d", "reason": te}})),
        _clause("C16a", ("failed", {"message": f"ZeRO-2: the run failed: {te}"})),
        _clause("C9a", ("failed", {"message": "AssertionError: assert True is False"})),
        _clause("C12a", ("failed", {"message": "AssertionError: assert True is False"})),
        _clause("C13c", ("missing", {"missing": ["patch_accelerator_for_fp8"]})),
        _clause("C14b", ("missing", {"missing": ["patch_accelerator_for_fp8"]})),
        _clause("C11", ("blocked", {"blocked_by": {"clause": "C6", "reason": "r"}})),
    ]
    causes = {c["clause"]: (c["fails"], c["blocks"]) for c in root_causes(results)}
    assert causes == {
        "C9a": (["C9a"], []),  # the same assertion wording is not one defect
        "C11": ([], ["C11"]),  # blocked by a clause that did not run: a defect of its own
        "C12a": (["C12a"], []),
        "C13a": (["C13a", "C13d", "C16a"], ["C14"]),  # one part of the contract, and one crash
        "C13c": (["C13c", "C14b"], []),  # the same missing function
    }
    lines = format_table(build_report({"module": "m"}, results))
    assert lines[-1].startswith("DOES NOT CONFORM") and any(
        line.startswith("Root causes: 5 defect(s)") for line in lines
    )


# --------------------------------------------------------------------------- fp8ref check across implementations


def test_check_pairs_known_failures_per_implementation_shows_a_run_without_report_and_clears_the_callers_fp8_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two implementations, each with its own known-failures file (or none), the caller's shell holding
    ``ACCELERATE_MIXED_PRECISION=fp8``: ``fp8broken_two_clauses`` (imported from its folder: ``MODULE@DIR``)
    holds its two failures with its own file and passes C12a (a bare ``Accelerator()`` has FP8 off in the child),
    and a module that ends the interpreter on import is a column that did not run, with the reason, in the text
    table, the Markdown and the picture."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp8")
    monkeypatch.setenv("FP8_BACKEND", "te")
    known = tmp_path / "two.txt"
    known.write_text("C1\nC3\n")
    out, md, png = io.StringIO(), tmp_path / "docs" / "table.md", tmp_path / "table.png"
    md.parent.mkdir()
    md.write_text(f"# Prose kept\n\n{MARKDOWN_BEGIN}\nold table\n{MARKDOWN_END}\n\nMore prose.\n")
    rc = run_check(
        [f"fp8broken_two_clauses@{BROKEN}", f"fp8broken_exits_on_import@{BROKEN}"],
        gpu=False,
        report=None,
        extra_args=["-k", "c1_fp8_false or c3_create or c12a_warns_when_accelerator_has_fp8_disabled"],
        xfails=[str(known), "-"],
        markdown=str(md),
        png=str(png),
        workers=0,
        stream=out,
    )
    text = out.getvalue()
    assert rc != 0, text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if re.match(r"^C\d+[a-z]? ", line)}
    assert rows["C12a"] == ["C12a", "PASSED", "DID", "NOT", "RUN"], text
    assert rows["C1"][:2] == ["C1", "KNOWN"] and rows["C3"][:2] == ["C3", "KNOWN"]
    exits = f"fp8broken_exits_on_import@{BROKEN}"
    reason = f"the suite wrote no report for {exits} (pytest exit status 3)"
    assert f"{exits}: did not run: {reason}" in text
    table = md.read_text()
    assert table.startswith("# Prose kept\n") and table.rstrip().endswith("More prose.") and "old table" not in table
    assert f"| `{exits}` |" in table and f"did not run: {reason}" in table
    links = re.findall(r"\]\(([^)#]+)#c1\)", table)
    assert links and (md.parent / links[0]).resolve() == SPEC_PATH, links
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_refuses_one_known_failures_file_for_several_implementations() -> None:
    out = io.StringIO()
    assert run_check(["a", "b"], gpu=False, report=None, extra_args=[], xfails="known.txt", stream=out) == 2
    assert "A known-failures file is per module: give each --impl its own --xfails" in out.getvalue()
    assert run_check(["a", "b"], gpu=False, report=None, extra_args=[], xfails=["a.txt"], stream=out) == 2


def test_check_child_environment_drops_the_callers_accelerate_and_fp8_variables() -> None:
    caller = {
        "ACCELERATE_MIXED_PRECISION": "fp8",
        "FP8_BACKEND": "te",
        "FP8REF_IMPL": "x",
        "PYTHONPATH": "/p",
        "HOME": "/h",
    }
    env = child_env("mod@/tmp/dir", workers=0, environ=caller)
    assert not [k for k in env if k.startswith(("ACCELERATE_", "FP8_"))]
    assert env["HOME"] == "/h" and env["FP8REF_IMPL"] == "x"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(Path("/tmp/dir").resolve()), "/p"]
    assert split_impl("mod@/tmp/dir") == ("mod", "/tmp/dir") and split_impl("mod") == ("mod", None)
