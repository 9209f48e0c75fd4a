"""Run the installed conformance suite against implementations and print the clause table.

``run_check`` is what ``fp8ref check`` calls: it runs ``pytest --pyargs fp8ref_conformance`` once per
implementation, each in its own child process (so the caller's process state cannot leak into the suite,
nor one implementation's into another's; the caller's ``ACCELERATE_*``/``FP8_*`` variables are not passed on),
reads the JSON report the plugin writes, and prints one table (clauses down, implementations across). It
returns 0 only when every implementation conforms, once the failures listed in its known-failures file are taken
into account.

An implementation is a module name, or ``MODULE@DIR`` for a module imported from ``DIR`` (so that two versions
of one module can be compared: ``--impl pkg.fp8_utils@/tmp/v1 --impl pkg.fp8_utils@/tmp/v2``; their columns are
labelled with the module and its version). Each implementation has its own known-failures file: ``xfails`` is a
list in the order of the implementations (``None`` or ``"-"`` for none); one file for several implementations is
refused, since a known-failures file is per module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .kit.env import without_fp8_variables
from .kit.strategies import THOROUGH_ENV_VAR
from .plugin import NO_TABLE_ENV
from .report.document import spec_base_for, write_markdown
from .report.known import write_known_failures_of
from .report.picture import draw_table
from .report.render import across_table_lines, failure_lines, format_table, markdown_table

#: The suite's import name.
SUITE_PACKAGE = __name__.split(".", 1)[0]


#: What the suite imports besides torch and accelerate (the ``test`` extra of fp8ref).
REQUIREMENTS = ("pytest", "hypothesis", "transformers", "torchao")

#: pytest-xdist workers of a check (``fp8ref check -n N`` changes it). None by default: one process, whose children
#: (probes, FSDP2 ranks, DeepSpeed) start when collection ends and run on the other core beside the in-process tests
#: (:mod:`.kit.early`). Two workers each paid the imports (about 6 s of a core) and started the children only at
#: their first test: on a 2-core machine 43 s against 29 s for one process.
DEFAULT_WORKERS = 0


def missing_requirements() -> list[str]:
    """The suite's requirements that cannot be found in this environment."""
    return [name for name in REQUIREMENTS if importlib.util.find_spec(name) is None]


def pytest_command(
    impl: str,
    gpu: bool,
    report: str,
    extra_args: Sequence[str] = (),
    *,
    xfails: str | None = None,
    workers: int = 0,
) -> list[str]:
    """The pytest command line of a check (extra arguments come last, so they can override)."""
    command = [
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
        "-q",
        "--tb=line",
        "-rN",
    ]
    if xfails:
        command += ["--fp8-xfails", xfails]
    if workers:
        # loadfile: a file's tests share one worker, so a module-scoped training run (C16, C17) runs once.
        command += ["-n", str(workers), "--dist", "loadfile"]
    return [*command, *extra_args]


def load_report(path: str | Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data


def split_impl(impl: str) -> tuple[str, str | None]:
    """``MODULE@DIR`` -> ``(MODULE, DIR)``; a plain module name -> ``(MODULE, None)``."""
    module, sep, directory = impl.partition("@")
    return (module, directory) if sep and directory else (impl, None)


def child_env(impl: str, workers: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a check's child: the caller's without ``ACCELERATE_*``/``FP8_*`` (a bare
    ``Accelerator()`` in a test must not depend on the caller's shell), with ``DIR`` of ``MODULE@DIR`` first on
    ``PYTHONPATH``, the table left to the runner, and as thorough as CI."""
    env = without_fp8_variables(os.environ if environ is None else environ)
    env[NO_TABLE_ENV] = "1"
    env[THOROUGH_ENV_VAR] = "1"  # a check is as thorough as CI (100 derandomized examples per property)
    _, directory = split_impl(impl)
    if directory:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(directory).resolve()), env.get("PYTHONPATH")) if p)
    if workers > 1 and "OMP_NUM_THREADS" not in env:
        # Each xdist worker is a torch process with one intra-op thread per core by default: N workers
        # would run N x cores spinning threads on the cores (several times slower). Share the cores out.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


def run_one(
    impl: str,
    gpu: bool,
    report_path: str,
    extra_args: Sequence[str],
    *,
    xfails: str | None,
    workers: int,
    stream: TextIO,
) -> tuple[int, dict[str, Any] | None]:
    """One child pytest run of the suite against ``impl``; its exit status and JSON report."""
    env = child_env(impl, workers)
    stream.flush()
    command = pytest_command(split_impl(impl)[0], gpu, report_path, extra_args, xfails=xfails, workers=workers)
    proc = subprocess.run(command, env=env, check=False)
    return proc.returncode, load_report(report_path)


def _xfails_per_impl(impls: list[str], xfails: str | Sequence[str | None] | None) -> list[str | None] | str:
    """One known-failures file (or None) per implementation, or the message refusing the combination."""
    if xfails is None:
        return [None] * len(impls)
    files = [xfails] if isinstance(xfails, str) else list(xfails)
    files = [None if f in (None, "", "-") else f for f in files]
    if len(impls) == 1 and len(files) == 1:
        return files
    if len(files) != len(impls):
        return (
            f"fp8ref check: {len(files)} known-failures file(s) for {len(impls)} implementations. A known-failures "
            "file is per module: give each --impl its own --xfails, in the same order (--impl A --xfails a.txt "
            "--impl B --xfails b.txt; '-' for none), or check each implementation on its own"
        )
    return files


def column_label(impl: str, data: Mapping[str, Any] | None) -> str:
    """The column of ``impl`` in the tables: its name, or for ``MODULE@DIR`` the module and its version."""
    module, directory = split_impl(impl)
    if directory is None:
        return impl
    version = (data or {}).get("implementation", {}).get("version")
    return f"{module} {version}" if version else impl


def run_check(
    impl: str | Sequence[str],
    gpu: bool,
    report: str | None,
    extra_args: list[str],
    *,
    xfails: str | Sequence[str | None] | None = None,
    markdown: str | None = None,
    png: str | None = None,
    write_xfails: str | None = None,
    workers: int | None = None,
    stream: TextIO | None = None,
    spec_url: str | None = None,
) -> int:
    """Run the suite against each implementation; print the table; 0 only when every one conforms.

    ``gpu`` selects the ``gpu``-marked clauses (G1-G4) instead of the CPU ones. ``report`` keeps the JSON
    report at that path (one implementation: its report; several: ``{"implementations": {...}}``).
    ``xfails`` is a known-failures file per implementation (see the module docstring); ``write_xfails`` writes
    one listing the clauses that fail today. ``markdown`` and ``png`` write the table as Markdown (its clause
    links point to ``spec_url`` when given, else to the installed spec relative to the file) and as a
    picture. ``workers`` is the number of pytest-xdist workers (default 0: one process, its
    children started early). ``extra_args`` are passed to pytest.
    """
    out = stream if stream is not None else sys.stdout
    impls = [impl] if isinstance(impl, str) else list(impl)
    missing = missing_requirements()
    if missing:
        print(
            f"fp8ref check: the conformance suite needs {', '.join(missing)}, not installed here. "
            "Install the test extra: pip install 'fp8ref[test]'",
            file=out,
        )
        return 2
    if write_xfails and len(impls) != 1:
        print("fp8ref check: --write-xfails needs exactly one --impl (a known-failures file is per module)", file=out)
        return 2
    files = _xfails_per_impl(impls, xfails)
    if isinstance(files, str):
        print(files, file=out)
        return 2
    workers = DEFAULT_WORKERS if workers is None else workers
    results: dict[str, tuple[int, dict[str, Any] | None]] = {}
    with tempfile.TemporaryDirectory(prefix="fp8ref-check-") as tmp:
        for index, name in enumerate(impls):
            if len(impls) == 1 and report:
                path = str(Path(report).resolve())
            else:
                path = str(Path(tmp) / f"conformance-{index}.json")
            if len(impls) > 1:
                print(f"\n=== fp8ref check: {name} ({index + 1}/{len(impls)})", file=out)
            results[name] = run_one(name, gpu, path, extra_args, xfails=files[index], workers=workers, stream=out)
    print("", file=out)
    if len(impls) == 1:
        status = _single(impls[0], *results[impls[0]], report=report, out=out)
    else:
        status = _several(results, out=out)
        if report:
            data = {"implementations": {n: d for n, (_, d) in results.items()}, "all_conform": status == 0}
            Path(report).write_text(json.dumps(data, indent=2) + "\n")
            print(f"report: {Path(report).resolve()}", file=out)
    reports = {column_label(n, d): d for n, (_, d) in results.items()}
    reasons = {column_label(n, d): no_report_reason(n, code) for n, (code, d) in results.items() if d is None}
    if markdown:
        write_markdown(markdown, markdown_table(reports, spec_base=spec_base_for(markdown, spec_url), reasons=reasons))
        print(f"markdown: {Path(markdown).resolve()}", file=out)
    if png:
        draw_table(reports, png, reasons=reasons)
        print(f"picture: {Path(png).resolve()}", file=out)
    if write_xfails:
        first = results[impls[0]][1]
        if first is None or not first.get("clauses"):
            print("fp8ref check: no clause ran, so no known-failures file was written", file=out)
            return status or 2
        failing = write_known_failures_of(write_xfails, split_impl(impls[0])[0], first)
        print(
            f"known failures: wrote {len(failing)} clause(s) to {write_xfails}; "
            f"run with --xfails {write_xfails} to hold the line there",
            file=out,
        )
    return status


def no_report_reason(impl: str, code: int) -> str:
    return f"the suite wrote no report for {impl} (pytest exit status {code})"


def _single(impl: str, code: int, data: dict[str, Any] | None, *, report: str | None, out: TextIO) -> int:
    if data is None:
        print(f"fp8ref check: {no_report_reason(impl, code)}", file=out)
        return code or 2
    for line in format_table(data, width=max(110, shutil.get_terminal_size().columns)):
        print(line, file=out)
    if report:
        print(f"report: {Path(report).resolve()}", file=out)
    return _status(impl, code, data, out)


def _status(impl: str, code: int, data: Mapping[str, Any] | None, out: TextIO) -> int:
    if data is None:
        return code or 2
    if not data.get("clauses"):
        print(f"fp8ref check: no clause ran for {impl}", file=out)
        return code or 5
    if code != 0 and data.get("all_passed"):
        print(f"fp8ref check: pytest exited with {code} for {impl}", file=out)
        return code
    return 0 if data.get("all_passed") else 1


def _several(results: Mapping[str, tuple[int, dict[str, Any] | None]], *, out: TextIO) -> int:
    labels = {name: column_label(name, data) for name, (_, data) in results.items()}
    reasons = {labels[n]: no_report_reason(n, code) for n, (code, d) in results.items() if d is None}
    for line in across_table_lines({labels[n]: d for n, (_, d) in results.items()}, reasons):
        print(line, file=out)
    status = 0
    for name, (code, data) in results.items():
        if data is not None:
            for line in failure_lines(labels[name], data):
                print(line, file=out)
        one = _status(name, code, data, out)
        status = status or one
    return status
