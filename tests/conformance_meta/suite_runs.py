"""Run the installed conformance suite several times in ONE child process, one pytest session per run.

A child pytest costs about 5 s before its first test (importing torch, accelerate, torchao and the
suite), and the meta-tests judge over a dozen implementations. Here one child pays that once: it runs
``pytest.main`` for each run in turn, as ``pytest --pyargs fp8ref_conformance ...`` would, and keeps each
run's exit status, terminal output and JSON report. The runs share only what a Python process caches
(imported modules); the suite's own isolation puts ``os.environ``, accelerate's state and the
``Accelerator`` class back after every test, and this runner puts back ``os.environ`` and ``sys.path``
after every run. An implementation that changes another module when it is imported (fp8ref's, say) must
come last in its batch.

This is the one way the meta-tests start a child suite (``fp8ref check``'s own children are its runner's
business, tested in ``test_runner.py``). Used as a library by the meta-tests (:func:`run_suites`) and as a
script by the child it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SuiteRun:
    """One pytest session of the suite: its arguments, environment and import path for the implementation."""

    key: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class SuiteResult:
    """What a run left: pytest's exit status, its terminal output (stdout, stderr), and the suite's JSON report
    (if written)."""

    ret: int
    stdout: str
    report: dict[str, Any] | None
    stderr: str = ""


def run_suites(runs: list[SuiteRun], workdir: Path, *, timeout: float = 600.0) -> dict[str, SuiteResult]:
    """Run ``runs`` in order in one child process started in ``workdir``; the results by run key."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "runs.json"
    spec.write_text(json.dumps([asdict(run) for run in runs]))
    env = dict(os.environ)
    env.pop("FP8REF_IMPL", None)
    env.pop("PYTEST_ADDOPTS", None)
    child = subprocess.run(
        [sys.executable, __file__, str(spec)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"the batch of suite runs broke (exit {child.returncode}):\n{child.stderr[-3000:]}")
    results = {}
    for run in runs:
        out = workdir / run.key
        report = out / "report.json"
        results[run.key] = SuiteResult(
            ret=int((out / "ret").read_text()),
            stdout=(out / "stdout.txt").read_text(),
            report=json.loads(report.read_text()) if report.exists() else None,
            stderr=(out / "stderr.txt").read_text(),
        )
    return results


def _run_one(run: SuiteRun, workdir: Path) -> None:
    import pytest

    out = workdir / run.key
    out.mkdir(parents=True, exist_ok=True)
    environ, path = dict(os.environ), list(sys.path)
    os.environ.update(run.env)
    # The implementation is importable in this process and in those the suite starts (probes, workers).
    os.environ["PYTHONPATH"] = os.pathsep.join([*run.path, *filter(None, [environ.get("PYTHONPATH")])])
    sys.path[:0] = list(run.path)
    try:
        with (
            (out / "stdout.txt").open("w") as stdout,
            (out / "stderr.txt").open("w") as stderr,
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            ret = pytest.main([*run.args, "--conformance-report", str(out / "report.json")])
    finally:
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = path
    (out / "ret").write_text(str(int(ret)))


def main(argv: list[str]) -> int:
    spec = Path(argv[0])
    for raw in json.loads(spec.read_text()):
        run = SuiteRun(raw["key"], tuple(raw["args"]), dict(raw["env"]), tuple(raw["path"]))
        _run_one(run, spec.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
