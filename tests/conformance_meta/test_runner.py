"""Tests of ``fp8ref_conformance.runner.run_check`` (what ``fp8ref check`` runs)."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

import pytest

from fp8ref.cli import build_parser
from fp8ref_conformance.report.render import markdown_table
from fp8ref_conformance.runner import DEFAULT_WORKERS, pytest_command, run_check

from .expectations import BROKEN_DIR


def test_pytest_command_selects_marker_impl_report_xfails_and_workers() -> None:
    cmd = pytest_command("my_impl", False, "/tmp/r.json", ["-k", "c9"], xfails="known.txt", workers=2)
    assert cmd[:3] == [sys.executable, "-m", "pytest"]
    assert cmd[cmd.index("-m", 3) + 1] == "not gpu"
    assert cmd[cmd.index("--fp8-impl") + 1] == "my_impl"
    assert cmd[cmd.index("--conformance-report") + 1] == "/tmp/r.json"
    assert cmd[cmd.index("--fp8-xfails") + 1] == "known.txt"
    assert cmd[cmd.index("-n") + 1] == "2"
    assert cmd[-2:] == ["-k", "c9"], "extra arguments come last so that they can override"
    assert "-n" not in pytest_command("m", False, "r", workers=0)
    assert pytest_command("m", True, "r")[pytest_command("m", True, "r").index("-m", 3) + 1] == "gpu"


def test_check_runs_in_one_process_by_default_and_passes_n_through() -> None:
    assert DEFAULT_WORKERS == 0
    args = build_parser().parse_args(["check", "--impl", "a", "--impl", "b", "-n", "4", "--xfails", "k.txt"])
    assert (args.impl, args.workers, args.xfails) == (["a", "b"], 4, "k.txt")
    assert build_parser().parse_args(["check"]).workers is None, "None: the runner's default (one process)"


def test_check_across_implementations_one_table_markdown_png_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--impl fp8ref --impl <broken>``: one table (clauses down, implementations across), the JSON report of
    both, the Markdown table and the picture; exit 1 because one implementation does not conform."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(BROKEN_DIR), os.environ.get("PYTHONPATH")) if p))
    out = io.StringIO()
    report, md, png = tmp_path / "all.json", tmp_path / "t.md", tmp_path / "t.png"
    rc = run_check(
        ["fp8ref", "fp8broken_two_clauses"],
        gpu=False,
        report=str(report),
        extra_args=["-k", "c1_fp8_false or c2_create"],
        markdown=str(md),
        png=str(png),
        workers=0,
        stream=out,
    )
    text = out.getvalue()
    assert rc == 1, text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("clause "))
    assert header.split() == ["clause", "fp8ref", "fp8broken_two_clauses"]
    assert next(line for line in lines if line.startswith("C1 ")).split() == ["C1", "PASSED", "FAILED"]
    assert next(line for line in lines if line.startswith("C2 ")).split() == ["C2", "PASSED", "PASSED"]
    assert any(line.startswith("fp8broken_two_clauses C1 [SPEC.md#c1]") for line in lines), text
    data = json.loads(report.read_text())
    assert set(data["implementations"]) == {"fp8ref", "fp8broken_two_clauses"} and data["all_conform"] is False
    assert data["implementations"]["fp8ref"]["all_passed"] is True
    table = md.read_text()
    assert "| clause | `fp8ref` | `fp8broken_two_clauses` |" in table
    link = re.search(r"^\| \[C1\]\((\S+)#c1\) \| passed \| failed \|$", table, re.M)
    assert link and (md.parent / link[1]).resolve().is_file(), f"the link points nowhere: {table}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_writes_the_known_failures_file_of_a_first_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(BROKEN_DIR), os.environ.get("PYTHONPATH")) if p))
    out = io.StringIO()
    xfails = tmp_path / "known.txt"
    rc = run_check(
        "fp8broken_two_clauses",
        gpu=False,
        report=None,
        extra_args=["-k", "c1_fp8_false or c2_create or c3_create"],
        write_xfails=str(xfails),
        workers=0,
        stream=out,
    )
    assert rc == 1, out.getvalue()
    entries = [line for line in xfails.read_text().splitlines() if line and not line.startswith("#")]
    assert entries == ["C1", "C3"]
    assert f"known failures: wrote 2 clause(s) to {xfails}" in out.getvalue()


def test_run_check_fails_when_the_implementation_cannot_be_imported() -> None:
    out = io.StringIO()
    rc = run_check(
        "fp8meta_no_such_module", gpu=False, report=None, extra_args=["-k", "c1_fp8_false"], workers=0, stream=out
    )
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


def test_markdown_table_links_each_clause_to_the_spec_where_the_caller_says() -> None:
    reports = {
        "a": {"clauses": {"C9d": {"outcome": "known"}}, "all_passed": True, "summary": {"passed": 0, "known": 1}},
        "b": {"clauses": {"C9d": {"outcome": "missing"}}, "all_passed": False, "summary": {"missing": 1}},
    }
    table = markdown_table(reports, spec_base="https://example.org/spec/SPEC.md")
    assert "| [C9d](https://example.org/spec/SPEC.md#c9d) | known | missing |" in table
    assert "| C9d | known | missing |" in markdown_table(reports), "no base: no link"
