"""Run the installed conformance suite against an implementation and print the clause table.

``run_check`` is what ``fp8ref check`` calls: it runs ``pytest --pyargs fp8ref_conformance`` in a child
process (so the caller's process state cannot leak into the suite, nor the suite's into the caller),
reads the JSON report the plugin writes, prints the table of clauses and returns 0 only when every
clause that ran passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .report import format_table

#: The suite's installed import name (the repository keeps it in the folder ``conformance/``).
SUITE_PACKAGE = "fp8ref_conformance"

#: Set in the child so that the plugin leaves the table to the runner (printed once, at the end).
NO_TABLE_ENV = "FP8REF_CONFORMANCE_NO_TABLE"


#: What the suite imports besides torch and accelerate (the ``test`` extra of fp8ref).
REQUIREMENTS = ("pytest", "hypothesis", "transformers", "torchao")


def missing_requirements() -> list[str]:
    """The suite's requirements that cannot be found in this environment."""
    return [name for name in REQUIREMENTS if importlib.util.find_spec(name) is None]


def pytest_command(impl: str, gpu: bool, report: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The pytest command line of a check (extra arguments come last, so they can override)."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        SUITE_PACKAGE,
        "-m",
        "gpu" if gpu else "not gpu",
        "--fp8-impl",
        impl,
        "--conformance-report",
        report,
        "-p",
        "no:cacheprovider",
        "--hypothesis-profile",
        "ci",
        "-q",
        "--tb=line",
        "-rN",
        *extra_args,
    ]


def load_report(path: str | Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data


def run_check(
    impl: str,
    gpu: bool,
    report: str | None,
    extra_args: list[str],
    *,
    stream: TextIO | None = None,
) -> int:
    """Run the suite against ``impl``; print the clause table; 0 only when every clause passed.

    ``gpu`` selects the ``gpu``-marked clauses (G1-G4) instead of the CPU ones. ``report`` keeps the
    JSON report at that path (else it goes to a temporary file). ``extra_args`` are passed to pytest.
    """
    out = stream if stream is not None else sys.stdout
    missing = missing_requirements()
    if missing:
        print(
            f"fp8ref check: the conformance suite needs {', '.join(missing)}, not installed here. "
            "Install the test extra: pip install 'fp8ref[test]'",
            file=out,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="fp8ref-check-") as tmp:
        report_path = str(Path(report).resolve()) if report else str(Path(tmp) / "conformance.json")
        env = dict(os.environ)
        env[NO_TABLE_ENV] = "1"
        out.flush()
        proc = subprocess.run(pytest_command(impl, gpu, report_path, extra_args), env=env, check=False)
        data = load_report(report_path)
    if data is None:
        print(f"fp8ref check: the suite wrote no report (pytest exit status {proc.returncode})", file=out)
        return proc.returncode or 2
    print("", file=out)
    for line in format_table(data, width=max(110, shutil.get_terminal_size().columns)):
        print(line, file=out)
    if report:
        print(f"report: {report_path}", file=out)
    if not data.get("clauses"):
        print("fp8ref check: no clause ran", file=out)
        return proc.returncode or 5
    if proc.returncode != 0 and data.get("all_passed"):
        print(f"fp8ref check: pytest exited with {proc.returncode}", file=out)
        return proc.returncode
    return 0 if data.get("all_passed") else 1
