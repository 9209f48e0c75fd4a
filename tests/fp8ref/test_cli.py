"""The fp8ref command line: doctor and plan."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fp8ref.cli import main

ROOT = Path(__file__).resolve().parents[2]
LLAMA3_70B = ROOT / "examples" / "configs" / "llama3-70b.json"


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # a broken install (OSError, RuntimeError, ...) is not usable either
        return False
    return True


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_doctor_json_describes_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    """Compared with what this test finds itself (imports, installed metadata, torch.cuda), so it holds
    on a machine with Transformer Engine and a GPU as well as on the CPU CI machine."""
    import torch

    code = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    cuda = torch.cuda.is_available()
    capability = tuple(torch.cuda.get_device_capability(0)) if cuda else None
    assert report["cuda_device"] == (torch.cuda.get_device_name(0) if cuda else None)
    assert (tuple(report["compute_capability"]) if report["compute_capability"] else None) == capability
    fp8_gpu = capability is not None and capability >= (8, 9)
    backends = {b["backend"]: b for b in report["backends"]}
    assert set(backends) == {"torchao", "te"}
    for name, dist in [("torch", "torch"), ("torchao", "torchao"), ("transformer-engine", "transformer-engine")]:
        assert report["versions"][name] == _version(dist), name
    torchao_ok = _importable("torchao.float8") and (capability is None or fp8_gpu)
    te_ok = _importable("transformer_engine.pytorch") and fp8_gpu
    assert backends["torchao"]["usable"] is torchao_ok, backends["torchao"]
    assert backends["te"]["usable"] is te_ok, backends["te"]
    assert backends["torchao"]["installed_version"] == _version("torchao")
    assert backends["te"]["installed_version"] == _version("transformer-engine")
    for verdict in backends.values():
        assert (verdict["fix"] is None) is verdict["usable"], verdict
    assert report["any_backend_usable"] is (torchao_ok or te_ok)
    assert code == (0 if torchao_ok or te_ok else 1)


def test_plan_of_the_embedded_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "model.layers.0.self_attn.q_proj" in out
    assert "lm_head" in out and "head or embedding layer" in out
    assert "share of linear FLOPs in FP8" in out


def test_plan_json_parses_and_totals_add_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    totals = plan["totals"]
    assert totals["converted"] + totals["skipped"] == totals["linear_layers"] == len(plan["layers"])
    assert totals["converted"] == sum(layer["convert"] for layer in plan["layers"])
    assert 0 < totals["fp8_flop_share"] < 1
    lm_head = next(layer for layer in plan["layers"] if layer["fqn"] == "lm_head")
    assert lm_head["convert"] is False


def test_auto_filter_skips_the_small_layers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--json", "--auto-filter"]) == 0
    plan = json.loads(capsys.readouterr().out)
    reasons = {layer["reason"] for layer in plan["layers"] if not layer["convert"]}
    assert "too small to gain from FP8" in reasons
    assert plan["totals"]["converted"] == 0  # every layer of the tiny model is below torchao's thresholds


def test_plan_of_llama3_70b_is_fast_and_complete(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["plan", "--json", "--config", str(LLAMA3_70B), "--gpu", "h200"]) == 0
    elapsed = time.perf_counter() - started
    plan = json.loads(capsys.readouterr().out)
    assert plan["totals"]["linear_layers"] == 80 * 7 + 1
    assert plan["totals"]["converted"] == 80 * 7
    assert plan["totals"]["fp8_flop_share"] > 0.98
    assert elapsed < 30, f"planning a 70B config took {elapsed:.1f} s"


def test_plan_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "config.json"
    bad.write_text('{"hidden_size": 8}')
    assert main(["plan", "--config", str(bad)]) == 2
    assert "model_type" in capsys.readouterr().err


#: What torchao, torch and transformers print at import on a machine without their CUDA extensions.
IMPORT_NOISE = ("Failed to load", "Detected no triton", "_pytree", "torchao")


def test_python_dash_m_entry_point_prints_pure_json_and_no_import_noise() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fp8ref", "plan", "--json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["recipe"] == "rowwise"
    noise = [line for line in result.stderr.splitlines() if any(word in line for word in IMPORT_NOISE)]
    assert noise == [], "third-party import notices reached the terminal"


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_import_noise_is_quieted_unless_verbose(
    verbose: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from fp8ref.cli import IMPORT_NOISE_LOGGERS

    for name in IMPORT_NOISE_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    assert main(["-v", "plan", "--json"] if verbose else ["plan", "--json"]) == 0
    json.loads(capsys.readouterr().out)
    levels = {name: logging.getLogger(name).level for name in IMPORT_NOISE_LOGGERS}
    expected = logging.NOTSET if verbose else logging.ERROR
    assert levels == dict.fromkeys(IMPORT_NOISE_LOGGERS, expected)


def test_plan_modes_eager_and_compiled(capsys: pytest.CaptureFixture[str]) -> None:
    totals = {}
    for flags in ([], ["--compiled"], ["--eager"]):
        assert main(["plan", "--json", *flags]) == 0  # the embedded tiny Llama: quick
        plan = json.loads(capsys.readouterr().out)
        totals[tuple(flags)] = (plan["mode"], plan["totals"]["predicted_linear_speedup"])
    assert totals[()] == totals[("--compiled",)] and totals[()][0] == "compiled"  # compiled is the default
    assert totals[("--eager",)][0] == "eager" and totals[("--eager",)][1] < totals[()][1]
    assert main(["plan", "--eager"]) == 0
    out = capsys.readouterr().out
    assert "mode eager: no torch.compile" in out and "roofline bound of the linear layers' speedup, eager:" in out


def test_plan_of_llama3_70b_eager_loses_compiled_wins(capsys: pytest.CaptureFixture[str]) -> None:
    bounds = {}
    for mode in ("eager", "compiled"):
        assert main(["plan", "--json", "--config", str(LLAMA3_70B), f"--{mode}"]) == 0
        bounds[mode] = json.loads(capsys.readouterr().out)["totals"]["predicted_linear_speedup"]
    assert bounds["eager"] < 1.0 < bounds["compiled"]
    assert main(["plan", "--json", "--config", str(LLAMA3_70B), "--eager", "--bf16-tflops", "300"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["predicted_linear_speedup"] > bounds["eager"]


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--tokens", "0"], "--tokens"),
        (["--tokens", "-5"], "--tokens"),
        (["--tokens", "abc"], "--tokens"),
        (["--gpu", "b200"], "--gpu"),
        (["--lora-rank", "0"], "--lora-rank"),
        (["--lora-rank", "x"], "--lora-rank"),
        (["--recipe", "blockwise"], "--recipe"),
        (["--eager", "--compiled"], "--eager"),
        (["--bf16-tflops", "-1"], "--bf16-tflops"),
        (["--hbm-tbps", "nan"], "--hbm-tbps"),
    ],
)
def test_plan_bad_option_is_one_line_and_status_2(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fp8ref plan: error: ") and option in lines[0], captured.err
    assert "Traceback" not in captured.err and not captured.out
