"""Tests of the clause report (names -> clauses, outcomes, JSON, table) and of the plugin's isolation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fp8ref_conformance.report.records import (
    CaseRecord,
    ClauseResult,
    all_passed,
    clause_of,
    group_by_clause,
    write_report,
)
from fp8ref_conformance.report.render import format_table
from fp8ref_conformance.report.session import build_report


@pytest.mark.parametrize(
    ("name", "clause"),
    [
        ("test_c9d_parent_component_named_output_is_converted", "C9d"),
        ("test_c12_quiet[mixed-rowwise]", "C12"),
        ("test_c01_padded_number", None),  # "c01" is no id of the clause table
        ("test_c18_beyond_the_table", None),
        ("test_c13a_sub_clause", "C13a"),
        ("test_g2_te_runs", "G2"),
        ("test_c9d", None),
        ("test_helpers", None),
        ("test_cx_nothing", None),
    ],
)
def test_clause_of(name: str, clause: str | None) -> None:
    assert clause_of(name) == clause


def test_case_record_keeps_the_worst_phase() -> None:
    record = CaseRecord("t")
    record.update("passed", None, 0.1)
    record.update("failed", "boom", 0.2)
    record.update("error", "teardown broke", 0.1)
    assert (record.outcome, record.message) == ("error", "teardown broke")
    assert record.duration == pytest.approx(0.4)


def _result(clause: str, *outcomes: str) -> ClauseResult:
    return ClauseResult(
        clause, [CaseRecord(f"mod.py::t{i}", o, f"msg {i}" if o != "passed" else None) for i, o in enumerate(outcomes)]
    )


def test_clause_outcome_rules() -> None:
    assert _result("C1", "passed", "skipped").outcome == "passed"
    assert _result("C1", "passed", "failed").outcome == "failed"
    assert _result("C1", "passed", "error").outcome == "failed"
    assert _result("G1", "skipped", "skipped").outcome == "skipped"
    assert _result("C1", "passed", "failed").first_failure == "t1: msg 1"
    assert _result("G1", "skipped").skip_reason == "msg 0"
    assert not all_passed([]) and not all_passed([_result("G1", "skipped")])
    assert all_passed([_result("C1", "passed"), _result("C2", "passed", "skipped")])


def test_group_by_clause_orders_clauses_as_the_contract() -> None:
    records = [(c, CaseRecord(c)) for c in ("G1", "C10", "C9d", "C2", "C9", "C13a")]
    assert [r.clause for r in group_by_clause(records)] == ["C2", "C9", "C9d", "C10", "C13a", "G1"]


def test_report_json_round_trip_and_table(tmp_path: Path) -> None:
    results = [_result("C1", "passed"), _result("C9d", "passed", "failed"), _result("G2", "skipped")]
    report = build_report({"module": "x", "file": "/x.py", "version": "1"}, results)
    path = write_report(tmp_path / "sub" / "r.json", report)
    data = json.loads(path.read_text())
    assert data["all_passed"] is False
    assert data["summary"] == {
        "passed": 1,
        "failed": 1,
        "missing": 0,
        "blocked": 0,
        "known": 0,
        "skipped": 1,
        "held": 0,
    }
    assert data["clauses"]["C9d"]["spec"] == "SPEC.md#c9d"
    assert data["clauses"]["C9d"]["first_failure"] == "t1: msg 1"
    assert [t["outcome"] for t in data["clauses"]["C9d"]["tests"]] == ["passed", "failed"]
    lines = format_table(data)
    assert lines[0] == "FP8 conformance of x 1"
    assert any(line.startswith("C9d") and "FAILED" in line and "[SPEC.md#c9d] t1: msg 1" in line for line in lines)
    assert any(line.startswith("G2") and "SKIPPED" in line for line in lines)
    assert lines[-1].startswith("DOES NOT CONFORM")
    skipped_only = build_report({"module": "x"}, [_result("G1", "skipped")])
    assert format_table(skipped_only)[-1].startswith("NOT VERIFIED (clauses skipped)")
    assert format_table(build_report({"module": "x"}, [_result("C1", "passed")]))[-1].startswith("CONFORMS")


# --------------------------------------------------------------------------- plugin


def test_isolation_restores_accelerator_and_accelerate_namespaces() -> None:
    import accelerate
    import accelerate.accelerator as accelerator_module

    from fp8ref_conformance.kit.isolation import snapshot

    init = accelerate.Accelerator.__init__
    convert = accelerator_module.convert_model
    saved = snapshot()
    try:
        accelerate.Accelerator.__init__ = lambda self, *a, **k: None  # type: ignore[method-assign]
        accelerate.Accelerator._fp8meta_flag = True  # type: ignore[attr-defined]
        accelerator_module.convert_model = lambda *a, **k: None
        accelerate.Accelerator = type("Replaced", (), {})  # type: ignore[misc]
    finally:
        saved.restore_accelerate()
    assert accelerate.Accelerator is accelerator_module.Accelerator
    assert accelerate.Accelerator.__init__ is init
    assert not hasattr(accelerate.Accelerator, "_fp8meta_flag")
    assert accelerator_module.convert_model is convert


def test_plugin_leaves_other_tests_alone(pytester: pytest.Pytester) -> None:
    """Outside the conformance package the plugin restores nothing and prints no clause table."""
    pytester.makepyfile(
        test_outside="""
        import os

        def test_c1_sets():
            os.environ["FP8META_LEAK"] = "1"

        def test_c1_sees():
            assert os.environ.get("FP8META_LEAK") == "1"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "FP8 conformance by clause" not in result.stdout.str()
    assert "fp8 conformance: implementation" not in result.stdout.str()


#: The scratch project's conftest: at the end of its session, which of these the session imported. The plugin must
#: import none of them (not the implementation under test, not torch) where the suite does not run.
SCRATCH_CONFTEST = """
import sys


def pytest_unconfigure(config):
    print("MODULES", [name for name in ("fp8ref", "torch", "accelerate") if name in sys.modules])
"""

SCRATCH_TEST = """
from hypothesis import given, settings, strategies as st

SEEN = []


@given(st.integers())
def test_scratch(request, x):
    if not SEEN:
        SEEN.append(x)
        print("SETTINGS", repr(settings()))
        print("MARKERS", sorted(request.config.getini("markers")))
"""


def _scratch_run(project: Path, ci: bool, plugin: bool) -> str:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("CI", "FP8REF_CONFORMANCE_THOROUGH", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    args = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_scratch.py"]
    if not plugin:
        args += ["-p", "no:fp8ref_conformance"]
    proc = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return "\n".join(line for line in proc.stdout.splitlines() if line.startswith(("SETTINGS", "MARKERS", "MODULES")))


@pytest.mark.parametrize("ci", [True, False], ids=["CI=true", "CI-unset"])
def test_plugin_changes_nothing_in_another_projects_session(tmp_path: Path, ci: bool) -> None:
    """A scratch project with one hypothesis test: its hypothesis settings (and markers) are the same
    with fp8ref's plugin loaded and blocked, under CI and outside it. The suite's own settings (100
    derandomized examples under CI) apply to the suite's tests only, and the session imports neither the implementation
    nor torch."""
    (tmp_path / "test_scratch.py").write_text(SCRATCH_TEST)
    (tmp_path / "conftest.py").write_text(SCRATCH_CONFTEST)
    loaded, blocked = _scratch_run(tmp_path, ci, plugin=True), _scratch_run(tmp_path, ci, plugin=False)
    print(f"CI={'true' if ci else 'unset'}, plugin loaded:\n{loaded}\nplugin blocked:\n{blocked}")
    assert "SETTINGS settings(" in loaded
    assert "MODULES []" in loaded, "the plugin imported the implementation or torch in a session without the suite"
    assert loaded == blocked


def test_suite_settings_are_thorough_under_ci_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from fp8ref_conformance.kit.strategies import CI_EXAMPLES, DEV_EXAMPLES, THOROUGH_ENV_VAR, suite_settings

    monkeypatch.delenv(THOROUGH_ENV_VAR, raising=False)
    monkeypatch.setenv("CI", "true")
    ci = suite_settings()
    assert (ci.max_examples, ci.derandomize, ci.database) == (CI_EXAMPLES, True, None) == (100, True, None)
    monkeypatch.delenv("CI")
    assert suite_settings().max_examples == DEV_EXAMPLES  # the rest follows the active hypothesis profile
    monkeypatch.setenv(THOROUGH_ENV_VAR, "1")  # what fp8ref check sets
    assert suite_settings().max_examples == CI_EXAMPLES


def test_plugin_defines_no_fixture_marker_or_hypothesis_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The global plugin holds no fixture (they live in the suite's conftest.py, which applies to the suite's
    folder only), and importing it registers no hypothesis profile."""
    import importlib
    import sys

    from hypothesis import settings

    # A fresh import of the plugin, and the module everyone else holds back in sys.modules afterwards.
    monkeypatch.delitem(sys.modules, "fp8ref_conformance.plugin", raising=False)
    before = dict(settings._profiles)  # hypothesis keeps its registered profiles here
    plugin = importlib.import_module("fp8ref_conformance.plugin")
    assert settings._profiles == before
    fixtures = [
        name
        for name, obj in vars(plugin).items()
        if type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(obj, "_pytestfixturefunction")
    ]
    assert fixtures == []
    assert "addinivalue_line" not in Path(plugin.__file__).read_text(), "no marker registered globally"
