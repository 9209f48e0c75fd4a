"""The conformance suite must fail deliberately broken implementations on the clause each breaks, and
pass a second correct implementation written independently of fp8ref.

Each broken module in ``broken/`` is fp8ref with one seed bug put back. The suite runs against each as a
user runs it (``pytest --pyargs fp8ref_conformance --fp8-impl MODULE``), restricted with ``-k`` to the
clause group concerned; the JSON report then says which clauses failed. All the broken modules share
one child process (:mod:`suite_runs`: one pytest session each), which pays torch's and the suite's
import once instead of once per module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .suite_runs import SuiteResult, SuiteRun, run_suites, suite_args

BROKEN_DIR = Path(__file__).resolve().parent / "broken"
CORRECT_DIR = Path(__file__).resolve().parent / "correct"


@dataclass(frozen=True)
class Broken:
    module: str
    select: str
    must_fail: frozenset[str]
    must_pass: frozenset[str]
    via_env: bool = False  # choose the implementation with $FP8REF_IMPL instead of --fp8-impl
    children: bool = False  # keep the FSDP2 (C15) and DeepSpeed (C16) tests, which start training processes


CASES = [
    Broken(
        "fp8broken_env_backend",
        "c8",
        frozenset({"C8b", "C8f"}),
        frozenset({"C8a", "C8c", "C8d", "C8e"}),
    ),
    Broken(
        "fp8broken_substring_filter",
        "c9",
        frozenset({"C9d"}),
        frozenset({"C9a", "C9b", "C9c", "C9e", "C9f"}),
    ),
    Broken(
        "fp8broken_empty_on_error",
        "c1_ or c4 or c5",
        frozenset({"C4"}),
        frozenset({"C1", "C5"}),
        via_env=True,
    ),
    Broken(
        "fp8broken_drop_all_gather",
        "c5 or c6",
        frozenset({"C6"}),
        frozenset({"C5"}),
    ),
    Broken(
        "fp8broken_verify_info_only",
        "c2 or c12 and not trainer",
        frozenset({"C12a"}),
        frozenset({"C2", "C12b"}),
    ),
    Broken(
        "fp8broken_patch_imports_te",
        "c12 and not trainer or c13d",
        frozenset({"C13d"}),
        frozenset({"C12a", "C12b"}),
    ),
    Broken(
        "fp8broken_patch_no_handlers_only",
        "c13",
        frozenset({"C13a"}),
        frozenset({"C13b", "C13c", "C13d", "C13e"}),
    ),
    Broken("fp8broken_emulates", "c5", frozenset({"C5e"}), frozenset({"C5"})),
    Broken(
        "fp8broken_verify_ignores_emulation",
        "c12a or c12b or c12c or c5e",
        frozenset({"C12c"}),
        frozenset({"C5e", "C12a", "C12b"}),
    ),
    Broken(
        "fp8broken_verify_warns_before_prepare",
        "c12a or c12b or c12d and not trainer",
        frozenset({"C12d"}),
        frozenset({"C12a", "C12b"}),
    ),
    Broken(
        "fp8broken_verify_never_follows_up",
        "c12a or c12b or c12d and not trainer",
        frozenset({"C12d"}),
        frozenset({"C12a", "C12b"}),
    ),
    # The filter tests of C17b, and C9e on the same filter (fast: no training run).
    Broken(
        "fp8broken_lora_adapters_converted",
        "c17b_filter or c17b_property or c9e",
        frozenset({"C17b"}),
        frozenset({"C9e"}),
    ),
    # Last: importing it switches off a check inside fp8ref.patch for the rest of the batch's process.
    # Only the all-gather runs of C16 (the suite starts no training run when only C16c is selected).
    Broken("fp8broken_deepspeed_all_gather", "c16c", frozenset({"C16c"}), frozenset(), children=True),
]


#: Leaves out the test modules that start training processes (FSDP2 on two ranks, DeepSpeed): their clauses'
#: in-process tests judge the same functions, and each such process costs 10 to 30 s of a 2-core machine.
WITHOUT_CHILDREN = "not test_c15_distributed and not deepspeed"


def session_of(
    impl: str, select: str, *, via_env: bool, children: bool = False
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The pytest arguments and environment of one session of the suite against ``impl``; without ``children``
    the selection leaves out the tests that start training processes."""
    keyword = select if children else f"({select}) and {WITHOUT_CHILDREN}"
    return suite_args(impl, keyword, via_env=via_env), ({"FP8REF_IMPL": impl} if via_env else {})


def runs_of(cases: list[Broken]) -> list[SuiteRun]:
    """One suite session per broken module, importable from ``broken/``."""
    runs = []
    for case in cases:
        args, env = session_of(case.module, case.select, via_env=case.via_env, children=case.children)
        runs.append(SuiteRun(case.module, args, env, (str(BROKEN_DIR),)))
    return runs


@pytest.fixture(scope="module")  # one batch per module: run with --dist loadfile under pytest-xdist
def broken_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteResult]:
    return run_suites(runs_of(CASES), tmp_path_factory.mktemp("broken-runs"))


@pytest.mark.parametrize("case", CASES, ids=[c.module for c in CASES])
def test_suite_fails_broken_implementation_on_its_clause(broken_results: dict[str, SuiteResult], case: Broken) -> None:
    result = broken_results[case.module]
    report = result.report
    assert report is not None, f"no report written:\n{result.stdout[-3000:]}"
    outcomes = {clause: data["outcome"] for clause, data in report["clauses"].items()}
    assert report["implementation"]["module"] == case.module
    assert report["implementation"]["file"].startswith(str(BROKEN_DIR))
    for clause in sorted(case.must_fail):
        assert outcomes.get(clause) == "failed", f"{clause} should fail for {case.module}: {outcomes}"
        assert report["clauses"][clause]["first_failure"], "a failed clause names its first failure"
    for clause in sorted(case.must_pass):
        assert outcomes.get(clause) == "passed", f"{clause} should pass for {case.module}: {outcomes}"
    assert report["all_passed"] is False
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout
    assert f"fp8 conformance: implementation {case.module} (file {BROKEN_DIR}" in out, "report header"
    assert "FP8 conformance by clause" in out and "DOES NOT CONFORM" in out, "terminal table"
    first = sorted(case.must_fail)[0]
    assert any(line.startswith(f"{first} ") and "FAILED" in line for line in out.splitlines()), out[-2000:]


def test_suite_passes_an_independent_correct_implementation(tmp_path: Path) -> None:
    """The whole CPU suite (C1..C17 and the G tests' CPU twins) against ``correct/fp8alt_minimal.py``,
    which shares no code with fp8ref: the suite judges behaviour, not fp8ref's way of doing things."""
    args, env = session_of("fp8alt_minimal", "c", via_env=False, children=True)
    result = run_suites([SuiteRun("fp8alt_minimal", args, env, (str(CORRECT_DIR),))], tmp_path)["fp8alt_minimal"]
    report = result.report
    assert report is not None, f"no report written:\n{result.stdout[-3000:]}"
    failed = {
        clause: data["first_failure"] for clause, data in report["clauses"].items() if data["outcome"] != "passed"
    }
    assert failed == {}
    expected = ({f"C{n}" for n in range(1, 16)} - {"C8", "C9", "C12", "C13"}) | {"C5e", "C12c", "C12d"}
    expected |= {f"G{n}/cpu" for n in range(1, 6)}
    expected |= {f"C{n}{letter}" for n in (16, 17) for letter in "abc"}
    expected |= {"C8g", "C12e", "C14b", "C16d"}
    assert expected <= set(report["clauses"]), sorted(report["clauses"])
    assert report["all_passed"] is True and result.ret == pytest.ExitCode.OK
