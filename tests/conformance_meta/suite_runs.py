"""Run the installed conformance suite as a user runs it, each run in a fork of the test process.

A fresh interpreter costs 10 to 15 s of a 2-core machine before the suite's first test (importing torch,
transformers' Trainer, torchao, PEFT), and the meta-tests judge about fifty runs. A fork of the pytest process
that asks for the runs has all of that imported already: it runs ``pytest.main`` once, as
``pytest --pyargs fp8ref_conformance ...`` would, writes the run's exit status, terminal output and JSON report,
and leaves with ``os._exit``. Each run starts from this process as it is, and nothing a run changes (the
environment, ``sys.path``, an implementation that patches another module when imported) reaches the next run or
this process. The children the suite starts (probes, the FSDP2 and DeepSpeed workers) are fresh interpreters as
always. Linux and macOS only (``os.fork``), like the meta-tests' CI.

This is the one way the meta-tests start a child suite (``fp8ref check``'s own children are its runner's
business, tested in ``test_runner.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
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


def suite_args(impl: str, select: str, *extra: str, via_env: bool = False) -> tuple[str, ...]:
    """The arguments of a session of the suite against ``impl``, as a user passes them, restricted with ``-k``;
    with ``via_env`` the implementation is left to ``$FP8REF_IMPL``, which the caller sets."""
    selection = ("-m", "not gpu", "-k", select, "-p", "no:cacheprovider")
    chosen = () if via_env else ("--fp8-impl", impl)
    return ("--pyargs", "fp8ref_conformance", *selection, *chosen, *extra)


def run_suites(runs: list[SuiteRun], workdir: Path, *, timeout: float = 600.0) -> dict[str, SuiteResult]:
    """Run each of ``runs`` in a fork of this process, in order, started in ``workdir``; the results by run key.

    ``timeout`` bounds the whole batch; a run still going when it is spent is killed with its process group."""
    workdir.mkdir(parents=True, exist_ok=True)
    _import_what_the_runs_import()
    deadline = time.monotonic() + timeout
    results = {}
    for run in runs:
        out = workdir / run.key
        out.mkdir(parents=True, exist_ok=True)
        code = _in_fork(run, workdir, out, deadline)
        if code != 0:
            error = (out / "error.txt").read_text() if (out / "error.txt").exists() else ""
            raise RuntimeError(f"the suite run {run.key!r} broke (exit {code}):\n{error[-3000:]}")
        report = out / "report.json"
        results[run.key] = SuiteResult(
            ret=int((out / "ret").read_text()),
            stdout=(out / "stdout.txt").read_text(),
            report=json.loads(report.read_text()) if report.exists() else None,
            stderr=(out / "stderr.txt").read_text(),
        )
    return results


#: What every run imports (the suite's conftest imports DeepSpeed before its tests): imported here once, so that no
#: fork imports it again. The suite's test modules come with the package walk below.
_HEAVY_IMPORTS = (
    "torch",
    "accelerate",
    "transformers.trainer",
    "transformers.models.llama.modeling_llama",
    "torchao.float8",
    "peft",
    "deepspeed",
    "hypothesis",
)


def _import_what_the_runs_import() -> None:
    import importlib
    import importlib.util
    import pkgutil

    for name in _HEAVY_IMPORTS:
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            importlib.import_module(name)
    suite = importlib.import_module("fp8ref_conformance")
    for module in pkgutil.iter_modules(suite.__path__, prefix=f"{suite.__name__}."):
        if module.name.rsplit(".", 1)[-1].startswith(("test_", "conftest")):
            importlib.import_module(module.name)


def _in_fork(run: SuiteRun, workdir: Path, out: Path, deadline: float) -> int:
    """Run ``run`` in a forked child (a process group of its own); its exit status, or -9 when killed at the
    deadline. The child writes its results under ``out`` and leaves with ``os._exit``: nothing of this
    process (its pytest session, atexit handlers, buffers) runs twice."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.setpgid(0, 0)
            os.chdir(workdir)
            for name in ("FP8REF_IMPL", "PYTEST_ADDOPTS"):
                os.environ.pop(name, None)
            _run_one(run, out)
            code = 0
        except BaseException:
            (out / "error.txt").write_text(traceback.format_exc())
        finally:
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            (out / "error.txt").write_text(f"killed: the batch ran out of time before the run {run.key!r} ended")
            return -9
        time.sleep(0.05)


def _run_one(run: SuiteRun, out: Path) -> None:
    import pytest

    os.environ.update(run.env)
    # The implementation is importable in this process and in those the suite starts (probes, workers).
    os.environ["PYTHONPATH"] = os.pathsep.join([*run.path, *filter(None, [os.environ.get("PYTHONPATH")])])
    sys.path[:0] = list(run.path)
    with (
        (out / "stdout.txt").open("w") as stdout,
        (out / "stderr.txt").open("w") as stderr,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        # The garbage collections of pytest's unraisable-exception plugin cost a second a session in a process
        # this size, and judge nothing the meta-tests read.
        args = [*run.args, "-p", "no:unraisableexception", "--conformance-report", str(out / "report.json")]
        ret = pytest.main(args)
    (out / "ret").write_text(str(int(ret)))
