"""The example ``examples/train_tiny_llama.py`` runs as users run it (a subprocess, on the CPU) and prints
progress, a loss line per step and the verify report; ``--bf16-baseline`` runs without FP8 and says so."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_tiny_llama.py"
STEPS = 4
TIMEOUT_S = 180.0
STEP_LINE = re.compile(r"^step\s+(\d+)/(\d+) \| loss (\S+) \| lr (\S+) \| (\S+) s$", re.MULTILINE)


def run_example(*args: str, output_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "FP8_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    command = [sys.executable, str(EXAMPLE), "--steps", str(STEPS), "--output-dir", str(output_dir), *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the example did not finish within {TIMEOUT_S:.0f} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def step_losses(stdout: str) -> list[float]:
    steps = STEP_LINE.findall(stdout)
    assert [(int(s), int(n)) for s, n, *_ in steps] == [(i, STEPS) for i in range(1, STEPS + 1)], stdout
    losses = [float(loss) for _, _, loss, *_ in steps]
    assert all(math.isfinite(loss) and loss > 0 for loss in losses), losses
    return losses


def test_example_trains_in_fp8_and_reports(tmp_path: Path) -> None:
    done = run_example(output_dir=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    step_losses(out)
    assert f"{STEPS}/{STEPS}" in done.stderr, "no progress bar on stderr"
    assert "patched Accelerator.__init__" in out
    assert "FP8: IN EFFECT (backend AO, recipe rowwise)" in out, out
    assert "converted layers: 14" in out, out
    assert "skipped linear layers: 1" in out, out
    assert re.search(r"- lm_head: head or embedding layer", out), out
    assert "model.layers.1.mlp.down_proj" in out.split("== verify_fp8_status report", 1)[1]


def test_example_bf16_baseline_runs_without_fp8(tmp_path: Path) -> None:
    done = run_example("--bf16-baseline", "--no-progress-bar", output_dir=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    step_losses(out)
    assert "bf16 baseline (FP8 off)" in out
    assert "FP8: not requested" in out, out
    assert "IN EFFECT" not in out
    assert "patched Accelerator" not in out


def test_example_lora_under_deepspeed_zero3(tmp_path: Path) -> None:
    """``--deepspeed zero3 --lora-rank 16`` in one run (one subprocess for both options, to keep CI lean):
    base layers in FP8 under ZeRO-3, the 28 adapters listed apart and kept in high precision."""
    pytest.importorskip("deepspeed", reason="--deepspeed needs deepspeed (in fp8ref's test extra)")
    pytest.importorskip("peft", reason="--lora-rank needs peft (in fp8ref's test extra)")
    done = run_example("--deepspeed", "zero3", "--lora-rank", "16", "--no-progress-bar", output_dir=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    step_losses(out)
    assert "DeepSpeed zero3, LoRA rank 16" in out, out
    report = out.split("== verify_fp8_status report", 1)[1]
    assert "FP8: IN EFFECT (backend AO, recipe rowwise)" in report and "converted layers: 14" in report, report
    assert "LoRA adapter layers kept in high precision: 28" in report, report
    assert "q_proj.base_layer" in report and "q_proj.lora_A.default" in report, report
