"""The specification (conformance/fp8ref_conformance/SPEC.md) and the tests stay in step, and the spec ships with
the suite."""

from __future__ import annotations

import re
from pathlib import Path

import fp8ref_conformance
from fp8ref_conformance.report.records import clause_of
from fp8ref_conformance.spec import SPEC_PATH, anchor, spec_clauses

SUITE_DIR = Path(fp8ref_conformance.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[2]

#: Every clause of the contract, with its sub-letters.
CONTRACT_CLAUSES = (
    [f"C{n}" for n in range(0, 18)]
    + ["C5e", *(f"C8{x}" for x in "abcdefg"), *(f"C9{x}" for x in "abcdef"), *(f"C12{x}" for x in "abcde")]
    + [*(f"C13{x}" for x in "abcde"), "C14b", *(f"C16{x}" for x in "abcd"), *(f"C17{x}" for x in "abc")]
    + [f"G{n}" for n in range(1, 6)]
)


def _test_clauses() -> dict[str, list[str]]:
    """Clause id -> test functions naming it, read from the suite's test files."""
    found: dict[str, list[str]] = {}
    for path in sorted(SUITE_DIR.glob("test_*.py")):
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.M):
            clause = clause_of(name)
            if clause is not None:
                found.setdefault(clause, []).append(f"{path.name}::{name}")
    return found


def _sections() -> dict[str, str]:
    text = SPEC_PATH.read_text()
    parts = re.split(r"^### ([CG]\d+[a-z]?)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _covers(section: str, clause: str) -> bool:
    """A test of ``clause`` covers ``section`` when it names it, or one of its sub-clauses (C13 <- C13a)."""
    return clause == section or (clause[:-1] == section and clause[-1].isalpha())


def test_spec_has_a_section_for_every_contract_clause() -> None:
    sections = _sections()
    assert sorted(set(CONTRACT_CLAUSES) - set(sections)) == []
    assert spec_clauses() == tuple(sections), "spec_clauses() reads the same headings"
    assert anchor("C9d") == "SPEC.md#c9d"


def test_every_clause_named_by_a_test_has_a_section() -> None:
    sections = _sections()
    orphans = {clause: tests for clause, tests in _test_clauses().items() if clause not in sections}
    assert orphans == {}, "tests name clauses that SPEC.md does not define"


def test_every_section_has_a_test_or_says_it_is_gpu_only() -> None:
    tests = _test_clauses()
    uncovered = [
        section
        for section, body in _sections().items()
        if not any(_covers(section, clause) for clause in tests) and "GPU-only" not in body
    ]
    assert uncovered == [], f"SPEC.md sections that no test checks: {uncovered}"


def test_every_section_states_rule_failure_and_tests() -> None:
    for section, body in _sections().items():
        assert "*Tests:*" in body, f"section {section} names no tests"
        if section[-1].isalpha() or section in ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C10", "C11", "C14"):
            assert "*Silent failure prevented:*" in body, f"section {section} names no silent failure"


def test_spec_ships_with_the_package_and_nothing_links_outside_the_repository() -> None:
    assert SPEC_PATH == SUITE_DIR / "SPEC.md" and SPEC_PATH.is_file()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^fp8ref_conformance = \["SPEC.md"', pyproject, re.M), "SPEC.md is package data of the suite"
    assert "](conformance/fp8ref_conformance/SPEC.md)" in (REPO / "README.md").read_text()


def test_no_tracked_file_points_outside_the_repository() -> None:
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an sdist or a wheel): nothing tracked to search")
    pattern = r"\.\./" + "shared"  # built here so that this file does not match itself
    found = subprocess.run(["git", "grep", "-n", "-E", pattern], cwd=REPO, capture_output=True, text=True, check=False)
    assert found.stdout == "", f"tracked files point outside the repository:\n{found.stdout}"
