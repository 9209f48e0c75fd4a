"""fp8ref under ``accelerate launch`` with a config file (``mixed_precision: fp8``, ``fp8_config: {backend: AO}``,
one CPU process): the launched script ends with FP8 in effect per ``verify_fp8_status``.

``accelerate launch`` turns the config file into environment variables for the script
(``ACCELERATE_MIXED_PRECISION=fp8``, ``ACCELERATE_FP8_BACKEND=AO``, ``ACCELERATE_USE_CPU=True``, and its
``--fp8_*`` defaults, among them ``ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER=1``). The script
(``tests/fp8ref/children/accelerate_fp8.py``) runs ``prepare`` and one step and writes its report as JSON.
fp8ref's module filter, not accelerate's default one, must be in use: accelerate's default
(``filter_first_and_last_linear_layers``) would keep the first linear layer, ``fc1``, in high precision.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from fp8ref_conformance.kit.processes import child_environment, start

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "accelerate_fp8_config.yaml"
SCRIPT = Path(__file__).resolve().parent / "children" / "accelerate_fp8.py"
TIMEOUT_S = 180.0
TRUE = ("1", "true", "yes", "on")


#: The script's modes, run in turn by one launch.
MODES = ("args", "env")


def launch(out: Path) -> tuple[int, str]:
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIG),
        "--num_cpu_threads_per_process",
        "1",
        str(SCRIPT),
        "--out",
        str(out),
        *(arg for mode in MODES for arg in ("--mode", mode)),
    ]
    # The suite's child launcher: without the caller's ACCELERATE_*/FP8_* variables, this process's import path, in
    # a process group of its own that is killed on timeout (and the test failed with the output).
    return start(command, child_environment(), "accelerate launch").wait(TIMEOUT_S)


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One ``accelerate launch`` of the script with both modes (a launch costs two interpreters' imports)."""
    out = tmp_path_factory.mktemp("launch") / "result.json"
    code, output = launch(out)
    assert code == 0, f"accelerate launch exited with {code}:\n{output[-4000:]}"
    assert out.is_file(), f"the launched script wrote no result:\n{output[-4000:]}"
    results: dict[str, dict[str, Any]] = json.loads(out.read_text())
    assert sorted(results) == sorted(MODES), f"the script ran {sorted(results)}, not every mode:\n{output[-4000:]}"
    for mode, result in results.items():
        result["output"] = "\n".join(line for line in output.splitlines() if line.startswith(f"[{mode}] "))
    return results


def check_fp8_in_effect(result: dict[str, Any]) -> dict[str, Any]:
    env = result["launch_env"]
    assert env.get("ACCELERATE_MIXED_PRECISION") == "fp8", f"accelerate launch did not pass mixed_precision: {env}"
    assert env.get("ACCELERATE_FP8_BACKEND") == "AO", f"accelerate launch did not pass fp8_config.backend: {env}"
    assert env.get("ACCELERATE_USE_CPU", "").lower() in TRUE, f"accelerate launch did not pass use_cpu: {env}"
    assert result["distributed_type"] == "DistributedType.NO"
    assert result["mixed_precision"] == "fp8"
    assert math.isfinite(result["loss"])
    report: dict[str, Any] = result["report"]
    assert report["in_effect"] is True, result["summary"]
    assert report["accelerator_fp8_enabled"] is True
    assert report["backend"] == "AO"
    assert report["converted"] == ["fc1", "fc2"], result["summary"]
    assert {s["fqn"] for s in report["skipped"]} == {"odd", "lm_head"}, result["summary"]
    assert report["problems"] == []
    assert "FP8: IN EFFECT" in result["output"]
    return report


def test_accelerate_launch_config_with_configure_and_patch(launched: dict[str, dict[str, Any]]) -> None:
    """The script's own FP8 arguments (torchao, no all-gather) win over the launcher's defaults: rowwise."""
    report = check_fp8_in_effect(launched["args"])
    assert report["recipe"] == "rowwise"


def test_accelerate_launch_config_with_patch_only(launched: dict[str, dict[str, Any]]) -> None:
    """``patch_accelerator_for_fp8()`` without arguments reads the request that ``accelerate launch`` set.

    ``accelerate launch`` defaults ``--fp8_enable_fsdp_float8_all_gather`` to true, so the environment asks for
    float8 all-gather, and fp8ref then builds the tensorwise recipe that the all-gather needs."""
    result = launched["env"]
    report = check_fp8_in_effect(result)
    all_gather = result["launch_env"].get("ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER", "").lower() in TRUE
    assert report["recipe"] == ("tensorwise + fsdp float8 all-gather" if all_gather else "rowwise")
