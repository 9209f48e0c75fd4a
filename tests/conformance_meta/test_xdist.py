"""Under pytest-xdist the workers collect and the controller only sees reports: the clause table and the
JSON report must still list every test that ran (the plugin derives clause and suite membership from each
report's node id and location)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fp8ref_conformance

from .suite_runs import SuiteRun, run_suites

#: Two files of the installed suite (collecting every module costs seconds in each worker).
SUITE_DIR = Path(fp8ref_conformance.__file__).resolve().parent


def test_clause_report_is_complete_under_xdist(tmp_path: Path) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    args = (
        *(str(SUITE_DIR / name) for name in ("test_c01_c04_args.py", "test_c09_filter.py")),
        "-m",
        "not gpu",
        "-k",
        "c1_fp8 or c9f",
        "-n",
        "1",  # one worker is enough: the controller still collects nothing (and each worker costs seconds)
        "-p",
        "no:cacheprovider",
    )
    result = run_suites([SuiteRun("xdist", args)], tmp_path)["xdist"]
    out = result.stdout
    assert result.ret == pytest.ExitCode.OK, out[-3000:]
    ran = int(re.search(r"(\d+) passed", out).group(1))  # type: ignore[union-attr]
    data = result.report
    assert data is not None
    recorded = sum(len(clause["tests"]) for clause in data["clauses"].values())
    assert set(data["clauses"]) == {"C1", "C9f"}
    assert recorded == ran > 0, f"the report holds {recorded} of the {ran} tests that ran"
    assert (
        "FP8 conformance by clause" in out
        and "NOT VERIFIED (only a subset of the clauses ran): 2 clauses passed" in out
    )
    # The workers tell the controller what the selection left out (C1's property test): a clause run in part.
    assert "C1 (in part)" in data["not_run"] and "C0" in data["not_run"] and "C9f" not in " ".join(data["not_run"])
