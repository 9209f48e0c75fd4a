"""Tests of ``fp8ref_conformance.runner.run_check`` (what ``fp8ref check`` runs)."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from fp8ref_conformance.runner import pytest_command, run_check

BROKEN_DIR = Path(__file__).resolve().parent / "broken"


def test_pytest_command_selects_marker_impl_and_report() -> None:
    cmd = pytest_command("my_impl", False, "/tmp/r.json", ["-k", "c9"])
    assert cmd[:3] == [sys.executable, "-m", "pytest"]
    assert cmd[cmd.index("-m", 3) + 1] == "not gpu"
    assert cmd[cmd.index("--fp8-impl") + 1] == "my_impl"
    assert cmd[cmd.index("--conformance-report") + 1] == "/tmp/r.json"
    assert cmd[-2:] == ["-k", "c9"], "extra arguments come last so that they can override"
    assert pytest_command("m", True, "r")[pytest_command("m", True, "r").index("-m", 3) + 1] == "gpu"


def test_run_check_passes_the_reference_and_keeps_the_report(tmp_path: Path) -> None:
    out = io.StringIO()
    report = tmp_path / "check.json"
    rc = run_check("fp8ref", gpu=False, report=str(report), extra_args=["-k", "c1_ or c9f"], stream=out)
    text = out.getvalue()
    assert rc == 0, text
    assert "CONFORMS: 2 clauses passed" in text
    assert f"report: {report}" in text
    data = json.loads(report.read_text())
    assert set(data["clauses"]) == {"C1", "C9f"} and data["all_passed"] is True


def test_run_check_fails_a_broken_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(BROKEN_DIR), path) if p))
    out = io.StringIO()
    rc = run_check(
        "fp8broken_empty_on_error",
        gpu=False,
        report=None,
        extra_args=["-k", "c4_te_missing_in_this_process or c1_fp8_true"],
        stream=out,
    )
    text = out.getvalue()
    assert rc == 1, text
    assert any(line.startswith("C4 ") and "FAILED" in line for line in text.splitlines()), text
    assert "DOES NOT CONFORM" in text


def test_run_check_fails_when_the_implementation_cannot_be_imported() -> None:
    out = io.StringIO()
    rc = run_check("fp8meta_no_such_module", gpu=False, report=None, extra_args=["-k", "c1_fp8_false"], stream=out)
    assert rc != 0
    assert "implementation error: ModuleNotFoundError: No module named 'fp8meta_no_such_module'" in out.getvalue()


def test_run_check_names_missing_requirements_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "hypothesis" else real_find_spec(name, *a)
    )
    out = io.StringIO()
    assert run_check("fp8ref", gpu=False, report=None, extra_args=[], stream=out) == 2
    assert "needs hypothesis" in out.getvalue() and "pip install 'fp8ref[test]'" in out.getvalue()
