"""Tests of ``python -m bench.report`` on small synthetic pytest-benchmark JSON files.

The numbers below are made up to test the arithmetic of the report; they are not measurements.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report
from fp8ref import roofline

REPO = Path(__file__).resolve().parents[2]


def _bench(
    variant: str,
    median: float,
    *,
    bench: str = "linear",
    mkn: tuple[int, int, int] = (8192, 4096, 4096),
    device: str = "cuda",
    device_name: str = "NVIDIA H100 80GB HBM3",
    recipe: str | None = None,
    compiled: bool = False,
) -> dict[str, Any]:
    m, k, n = mkn
    shape = f"test-{m}x{k}x{n}" if bench == "linear" else "test-block"
    extra: dict[str, Any] = {
        "bench": bench,
        "variant": variant,
        "recipe": recipe,
        "shape": shape,
        "m": m,
        "flops": 6 * m * k * n,
        "device": device,
        "device_name": device_name,
        "compute_capability": "9.0" if device == "cuda" else None,
        "compile": compiled,
        "emulate": False,
        "versions": {"torch": "x"},
    }
    if bench == "linear":
        extra.update(k=k, n=n)
    return {
        "name": f"test_{bench}[{shape}-{variant}]",
        "group": shape,
        "stats": {"median": median, "min": median, "max": median, "rounds": 3},
        "extra_info": extra,
    }


def _write(tmp_path: Path, benchmarks: list[dict[str, Any]]) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"machine_info": {}, "datetime": "2026-11-28T00:00:00", "benchmarks": benchmarks}))
    return path


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_gpu_report_numbers(tmp_path: Path) -> None:
    mkn = (8192, 4096, 4096)
    flops = 6 * 8192 * 4096 * 4096
    path = _write(
        tmp_path,
        [
            _bench("bf16", 2.0e-3, mkn=mkn),
            _bench("torchao-tensorwise", 1.6e-3, mkn=mkn, recipe="tensorwise"),
            _bench("torchao-rowwise", 2.5e-3, mkn=mkn, recipe="rowwise"),
            _bench("bf16", 3.0e-3, bench="block"),
            _bench("torchao-rowwise", 2.0e-3, bench="block", recipe="rowwise"),
        ],
    )
    results, _ = report.load_results(path)
    gpu = roofline.GPUS["h100-sxm"]
    rows = {(r.result.bench, r.result.variant): r for r in report.build_rows(results, gpu)}
    tw = rows[("linear", "torchao-tensorwise")]
    assert tw.speedup == pytest.approx(2.0 / 1.6)
    assert tw.tflops == pytest.approx(flops / 1.6e-3 / 1e12)
    bound = roofline.predict(*mkn, "tensorwise", "h100-sxm", "eager").speedup  # an eager run: the eager bound
    assert tw.bound == pytest.approx(bound)
    assert tw.share == pytest.approx((2.0 / 1.6) / bound)
    assert rows[("linear", "torchao-rowwise")].speedup == pytest.approx(0.8)
    assert rows[("block", "torchao-rowwise")].bound is None  # the roofline covers linear layers only

    out = tmp_path / "r"
    assert report.main([str(path), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| test-8192x4096x4096 | 8192x4096x4096 |" in md
    assert f"| {2.0 / 1.6:.2f}x |" in md
    assert f"| {bound:.2f}x |" in md
    assert f"{(2.0 / 1.6) / bound:.0%}" in md
    assert "| 0.80x |" in md
    assert "## Llama-style decoder block" in md
    assert "These results come from a CPU" not in md
    assert "NVIDIA H100 80GB HBM3" in md
    for png in ("speedup_vs_flops.png", "tflops_vs_flops.png"):
        width, height = _png_size(out / png)
        assert width > 600 and height > 400
        assert f"]({png})" in md


def test_eager_and_compiled_side_by_side_with_both_bounds(tmp_path: Path) -> None:
    """One line per variant and shape: the eager and the compiled run, each against the bf16 run of its mode,
    and both roofline bounds with the share of each reached."""
    mkn = (8192, 4096, 4096)
    path = _write(
        tmp_path,
        [
            _bench("bf16", 2.0e-3, mkn=mkn),
            _bench("bf16", 1.9e-3, mkn=mkn, compiled=True),
            _bench("torchao-rowwise", 4.0e-3, mkn=mkn, recipe="rowwise"),
            _bench("torchao-rowwise", 1.5e-3, mkn=mkn, recipe="rowwise", compiled=True),
        ],
    )
    results, _ = report.load_results(path)
    gpu = roofline.GPUS["h100-sxm"]
    lines = {line.result.variant: line for line in report.build_lines(report.build_rows(results, gpu), gpu)}
    rowwise = lines["torchao-rowwise"]
    assert rowwise.eager is not None and rowwise.compiled is not None
    assert rowwise.eager.speedup == pytest.approx(0.5) and rowwise.compiled.speedup == pytest.approx(1.9 / 1.5)
    eager = roofline.predict(*mkn, "rowwise", "h100-sxm", "eager").speedup
    compiled = roofline.predict(*mkn, "rowwise", "h100-sxm", "compiled").speedup
    assert rowwise.bounds == pytest.approx({"eager": eager, "compiled": compiled}) and eager < compiled
    md = report.render_markdown(report.build_rows(results, gpu), {}, path, gpu, [])  # no figures: quicker
    assert "| eager bound (h100-sxm) | compiled bound (h100-sxm) | share of bound (eager / compiled) |" in md
    (line,) = [row for row in md.splitlines() if "| torchao-rowwise |" in row]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[4:8] == ["4 ms", "0.50x", "1.5 ms", f"{1.9 / 1.5:.2f}x"]
    assert cells[9:] == [f"{eager:.2f}x", f"{compiled:.2f}x", f"{0.5 / eager:.0%} / {(1.9 / 1.5) / compiled:.0%}"]
    assert "Modes measured: compiled, eager" in md


def test_h200_device_picks_the_h200_bound(tmp_path: Path) -> None:
    mkn = (8192, 4096, 1024)
    path = _write(
        tmp_path,
        [
            _bench("bf16", 1.0e-3, mkn=mkn, device_name="NVIDIA H200"),
            _bench("torchao-rowwise", 1.0e-3, mkn=mkn, recipe="rowwise", device_name="NVIDIA H200"),
        ],
    )
    out = tmp_path / "r"
    assert report.main([str(path), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    h200 = roofline.predict(*mkn, "rowwise", "h200").speedup
    h100 = roofline.predict(*mkn, "rowwise", "h100-sxm").speedup
    assert f"{h200:.2f}x" != f"{h100:.2f}x"
    assert f"| {h200:.2f}x |" in md
    assert "with h200 at" in md


def test_measured_ceilings_change_the_bound(tmp_path: Path) -> None:
    mkn = (8192, 4096, 4096)
    path = _write(
        tmp_path, [_bench("bf16", 1e-3, mkn=mkn), _bench("torchao-tensorwise", 1e-3, mkn=mkn, recipe="tensorwise")]
    )
    out = tmp_path / "r"
    assert report.main([str(path), "--out", str(out), "--fp8-tflops", "1200", "--bf16-tflops", "700"]) == 0
    md = (out / "report.md").read_text()
    spec = roofline.GPUS["h100-sxm"].with_ceilings(fp8_tflops=1200, bf16_tflops=700)
    assert f"| {roofline.predict(*mkn, 'tensorwise', spec).speedup:.2f}x |" in md
    assert "measured ceilings" in md


def test_cpu_report_says_so(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"mkn": (64, 64, 64), "device": "cpu", "device_name": "CPU x86_64 (2 cores)"}
    path = _write(
        tmp_path,
        [_bench("bf16", 1e-4, **kw), _bench("torchao-rowwise", 5e-4, recipe="rowwise", **kw)],
    )
    out = tmp_path / "r"
    assert report.main([str(path), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "These results come from a CPU" in md
    assert "CPU times say nothing about GPU speed" in md
    assert "n/a (CPU)" in md
    assert "| 0.20x |" in md
    assert report._fmt_ratio(0.0042) == "0.0042x"  # tiny CPU speedups are not printed as 0.00x
    _png_size(out / "speedup_vs_flops.png")


def test_missing_baseline_is_shown_not_invented(tmp_path: Path) -> None:
    path = _write(tmp_path, [_bench("torchao-rowwise", 1e-3, recipe="rowwise")])
    out = tmp_path / "r"
    assert report.main([str(path), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "— (no bf16 result)" in md
    # nothing to plot a speedup of; the throughput figure is still there
    assert not (out / "speedup_vs_flops.png").exists()
    _png_size(out / "tflops_vs_flops.png")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "results file not found"),
        ("{not json", "is not valid JSON"),
        ('{"machine_info": {}}', "is not a pytest-benchmark JSON"),
        ("[1, 2]", "is not a pytest-benchmark JSON"),
        ('{"benchmarks": [{"name": "t", "stats": {"median": 1}, "extra_info": {}}]}', "none from the fp8ref bench"),
        (
            '{"benchmarks": [{"name": "t", "stats": {}, "extra_info": {"variant": "bf16", "flops": 1}}]}',
            "lacks a usable median",
        ),
        (
            '{"benchmarks": [{"name": "t", "stats": {"median": 0}, "extra_info": {"variant": "bf16", "flops": 1}}]}',
            "has a median of 0",
        ),
    ],
)
def test_bad_input_gives_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert report.main([str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench.report: error:")
    assert message in err
    assert not (tmp_path / "r" / "report.md").exists()


def test_cpu_smoke_json_feeds_the_report_module(tmp_path: Path) -> None:
    """The bench README's two commands end to end, as a user runs them: the CPU smoke set of every benchmark
    writes pytest-benchmark JSON through the harness, and ``python -m bench.report`` turns that real file
    into a report with a row per variant. (This is where ``pytest -m "not gpu"`` runs the bench: ``bench/``
    is not among the default test paths, so the smoke runs once, in its own session.)"""
    path = tmp_path / "smoke.json"
    # pytest-benchmark disables itself when it sees an xdist worker's variables, which this process may have.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    smoke = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench",
            "-m",
            "not gpu",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--benchmark-json={path}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
    runs = {(b["extra_info"]["bench"], b["extra_info"]["variant"]) for b in json.loads(path.read_text())["benchmarks"]}
    variants = {"bf16", "torchao-tensorwise", "torchao-rowwise", "torchao-rowwise_with_gw_hp"}
    assert runs == {(bench, v) for bench in ("linear", "block", "llama_step") for v in variants}
    out = tmp_path / "r"
    done = subprocess.run(
        [sys.executable, "-m", "bench.report", str(path), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = (out / "report.md").read_text()
    assert "These results come from a CPU" in text
    assert all(f"| {variant} |" in text for variant in variants)
    # the side-by-side part: the smoke runs eagerly, and each linear row carries both bounds of its recipe
    assert "Modes measured: eager" in text and "| eager bound (h100-sxm) | compiled bound (h100-sxm) |" in text
    for recipe in ("tensorwise", "rowwise", "rowwise_with_gw_hp"):
        (line,) = [row for row in text.splitlines() if f"| torchao-{recipe} |" in row and "| 64x64x64 |" in row]
        bounds = [roofline.predict(64, 64, 64, recipe, "h100-sxm", mode).speedup for mode in ("eager", "compiled")]
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[6] == "—" and cells[9:11] == [report._fmt_ratio(b) for b in bounds], line
    bad = subprocess.run(
        [sys.executable, "-m", "bench.report", str(tmp_path / "absent.json"), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "results file not found" in bad.stderr
