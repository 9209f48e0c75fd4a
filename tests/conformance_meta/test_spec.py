"""The clause table (conformance/fp8ref_conformance/clauses.json), the specification (SPEC.md beside it), the tests
and the README stay in step, and the spec and the table ship with the suite."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import fp8ref_conformance
from fp8ref_conformance import clauses as table
from fp8ref_conformance.kit.contract import CONTRACT_FUNCTIONS
from fp8ref_conformance.report.records import clause_of
from fp8ref_conformance.spec import SPEC_PATH, anchor, spec_clauses

SUITE_DIR = Path(fp8ref_conformance.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[2]

#: The fixture through which the suite's tests read each child of the table's ``children`` column.
CHILD_FIXTURES = {
    "no_backend_results": "no_backend_probe",
    "te_by_auto": "te_by_auto_probe",
    "fsdp_run": "fsdp2_ranks",
    "deepspeed_run": "deepspeed_run",
}


def _sections() -> dict[str, str]:
    text = SPEC_PATH.read_text()
    parts = re.split(r"^### ([CG]\d+[a-z]?)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n## ", 1)[0] for i in range(1, len(parts), 2)}


def _gpu_sections() -> list[str]:
    """The clauses under the spec's ``## GPU clauses`` heading."""
    gpu_part = SPEC_PATH.read_text().split("\n## GPU clauses\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^### (\S+)\s*$", gpu_part, flags=re.M)


# --------------------------------------------------------------------------- what the test files use, read statically


@dataclass
class _Uses:
    """What one function of a suite file reaches without running: contract functions, fixtures, the names it reads
    (helpers it calls, constants) and the attributes it reads (``request.module.TE_BY_AUTO_NEEDS``)."""

    functions: set[str] = field(default_factory=set)
    fixtures: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)


def _uses(node: ast.AST, params: list[str]) -> _Uses:
    uses = _Uses(fixtures=set(params))
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            uses.attributes.add(sub.attr)
            if isinstance(sub.value, ast.Name) and sub.value.id == "impl" and sub.attr in CONTRACT_FUNCTIONS:
                uses.functions.add(sub.attr)
        elif isinstance(sub, ast.Name):
            uses.names.add(sub.id)
        elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute):
            strings = [a.value for a in sub.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if sub.func.attr == "require":
                uses.functions.update(strings)
            elif sub.func.attr == "getfixturevalue":
                uses.fixtures.update(strings)
    return uses


@dataclass
class _SuiteFile:
    functions: dict[str, _Uses]
    #: Module-level names bound to contract function names (``NEEDS = ("configure_fp8_environment", ...)``).
    constants: dict[str, set[str]]


def _read(path: Path) -> _SuiteFile:
    tree = ast.parse(path.read_text())
    functions: dict[str, _Uses] = {}
    constants: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = _uses(node, [a.arg for a in node.args.args + node.args.kwonlyargs])
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            strings = {
                n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name) and strings & set(CONTRACT_FUNCTIONS):
                    constants[target.id] = strings & set(CONTRACT_FUNCTIONS)
    return _SuiteFile(functions, constants)


@functools.cache
def _suite_files() -> dict[str, _SuiteFile]:
    return {path.name: _read(path) for path in sorted(SUITE_DIR.glob("test_*.py"))}


@dataclass(frozen=True)
class _Test:
    file: str
    name: str
    functions: frozenset[str]
    children: frozenset[str]


def _tests() -> Iterator[_Test]:
    """Every test function of the suite, with what it reaches: its own body, the helpers of its file it calls, the
    fixtures (of its file or the conftest) it asks for, and its file's constants it reads."""
    conftest = _read(SUITE_DIR / "conftest.py").functions
    for file, suite_file in _suite_files().items():
        fixture_functions = {**conftest, **suite_file.functions}
        for name in suite_file.functions:
            if not name.startswith("test_"):
                continue
            seen, todo, functions, fixtures = set(), [suite_file.functions[name]], set(), set()
            while todo:
                uses = todo.pop()
                if id(uses) in seen:
                    continue
                seen.add(id(uses))
                functions |= uses.functions
                fixtures |= uses.fixtures
                read = (uses.names | uses.attributes) & set(suite_file.constants)
                functions.update(f for constant in read for f in suite_file.constants[constant])
                todo += [fixture_functions[f] for f in uses.fixtures if f in fixture_functions]
                todo += [suite_file.functions[n] for n in uses.names if n in suite_file.functions]
            children = frozenset(CHILD_FIXTURES[f] for f in fixtures if f in CHILD_FIXTURES)
            yield _Test(file, name, frozenset(functions), children)


def _tests_by_clause() -> dict[str | None, list[_Test]]:
    found: dict[str | None, list[_Test]] = {}
    for test in _tests():
        found.setdefault(clause_of(test.name), []).append(test)
    return found


# --------------------------------------------------------------------------- the table and the spec


def test_the_table_lists_the_spec_sections_in_the_same_order() -> None:
    assert table.ids() == tuple(_sections()), "clauses.json and SPEC.md's ### headings differ"
    assert spec_clauses() == table.ids()
    assert anchor("C9d") == "SPEC.md#c9d" == table.get("C9d").anchor  # type: ignore[union-attr]
    assert all(anchor(c.id) == c.anchor for c in table.clauses())


def test_a_spec_title_and_the_table_title_agree() -> None:
    """Where a section opens with a bold title (``**Arguments.**``), the table's title is that title."""
    for clause in table.clauses():
        bold = re.match(r"\s*\*\*(?P<title>[^*]+?)\.?\*\*", _sections()[clause.id])
        if bold:
            assert clause.title == bold["title"].replace("`", ""), clause.id
        assert clause.title, f"{clause.id} has no title"


def test_gpu_clauses_are_the_spec_gpu_sections_and_say_so_of_their_twins() -> None:
    assert [c.id for c in table.gpu_clauses()] == _gpu_sections()
    for clause in table.clauses():
        assert clause.cpu_twin == ("CPU twin" in _sections()[clause.id]), clause.id
        assert not clause.cpu_twin or clause.gpu, f"{clause.id}: only a GPU clause has a CPU twin"


def test_the_table_has_every_contract_function_in_order() -> None:
    for clause in table.clauses():
        assert [f for f in CONTRACT_FUNCTIONS if f in clause.needs] == list(clause.needs), clause.id


# --------------------------------------------------------------------------- the table and the tests


def test_every_test_names_a_clause_of_the_table() -> None:
    orphans = [f"{t.file}::{t.name}" for t in _tests_by_clause().get(None, [])]
    assert orphans == [], "tests whose name starts with no clause id of clauses.json"


def test_every_clause_has_tests_or_sub_clauses_that_judge_it() -> None:
    tested = set(_tests_by_clause()) - {None}
    assert {c.id for c in table.tested()} == tested, "own_tests in clauses.json: a clause has tests iff it says so"
    for clause in table.clauses():
        if not clause.own_tests:
            subs = [c for c in tested if c and c[:-1] == clause.id and c[-1].isalpha()]
            assert subs, f"{clause.id} has neither tests nor sub-clauses with tests"
            assert not clause.needs and not clause.children, f"{clause.id} has no tests: it needs nothing"


def test_needs_and_children_cover_what_the_tests_use() -> None:
    """What a test reaches statically (its body, its file's helpers and fixtures, the conftest's) is declared: a
    lower bound of the table's ``needs``; the children its fixtures read are the table's ``children``."""
    for clause, tests in _tests_by_clause().items():
        if clause is None:
            continue
        declared = table.get(clause)
        assert declared is not None
        used = set().union(*(t.functions for t in tests))
        assert used <= set(declared.needs), f"{clause}: tests use {sorted(used - set(declared.needs))} undeclared"
        children = set().union(*(t.children for t in tests))
        assert children == set(declared.children), f"{clause}: tests read the children {sorted(children)}"


@pytest.mark.parametrize(
    ("name", "clause"),
    [("test_c9d_x", "C9d"), ("test_c9_x", "C9"), ("test_c12d_x[a]", "C12d"), ("test_g5_x", "G5"), ("test_c18_x", None)],
)
def test_a_test_name_gives_the_longest_clause_id_of_the_table(name: str, clause: str | None) -> None:
    assert table.clause_of_test(name) == clause


def test_ranges_and_rows_are_computed_from_the_rows_given() -> None:
    picked = tuple(c for c in table.clauses() if c.id in ("C9", "C9d", "C10", "G2"))
    assert table.range_text(picked) == "C9..C10, G2"
    rows = table.cpu_rows()
    assert "C9d" in rows and "C13" not in rows and "G1/cpu" in rows and "G1" not in rows
    assert list(rows) == sorted(rows, key=table.sort_key) and len(set(rows)) == len(rows)


# --------------------------------------------------------------------------- the README


def test_the_readme_ranges_and_row_count_are_the_table_s() -> None:
    readme = (REPO / "README.md").read_text()
    letter_ranges = {part[0]: part for part in table.range_text().split(", ")}
    assert f"clauses {table.range_text()}" in readme
    for match in re.finditer(r"\b([CG])(\d+)\.\.\1(\d+)\b", readme):
        assert match[0] == letter_ranges[match[1]], f"README.md says {match[0]}, the table {letter_ranges[match[1]]}"
    twins = [c.id for c in table.clauses() if c.cpu_twin]
    for match in re.finditer(r"`(G\d+)/cpu`\.\.`(G\d+)/cpu`", readme):
        assert [match[1], match[2]] == [twins[0], twins[-1]], f"README.md says {match[0]}"
    rows = re.findall(r"(\d+) clause rows", readme)
    assert rows == [str(len(table.cpu_rows()))], (
        f"README.md's CPU row count {rows}, the table's {len(table.cpu_rows())}"
    )


# --------------------------------------------------------------------------- the spec's own shape


def test_every_section_states_rule_failure_and_tests() -> None:
    for section, body in _sections().items():
        assert "*Tests:*" in body, f"section {section} names no tests"
        if section[-1].isalpha() or section in ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C10", "C11", "C14"):
            assert "*Silent failure prevented:*" in body, f"section {section} names no silent failure"


def test_spec_and_table_ship_with_the_package_and_nothing_links_outside_the_repository() -> None:
    assert SPEC_PATH == SUITE_DIR / "SPEC.md" and SPEC_PATH.is_file()
    assert table.TABLE_PATH == SUITE_DIR / "clauses.json" and table.TABLE_PATH.is_file()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^fp8ref_conformance = \["SPEC.md", "clauses.json"', pyproject, re.M), "package data of the suite"
    assert "](conformance/fp8ref_conformance/SPEC.md)" in (REPO / "README.md").read_text()


def test_no_tracked_file_points_outside_the_repository() -> None:
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an sdist or a wheel): nothing tracked to search")
    pattern = r"\.\./" + "shared"  # built here so that this file does not match itself
    found = subprocess.run(["git", "grep", "-n", "-E", pattern], cwd=REPO, capture_output=True, text=True, check=False)
    assert found.stdout == "", f"tracked files point outside the repository:\n{found.stdout}"
