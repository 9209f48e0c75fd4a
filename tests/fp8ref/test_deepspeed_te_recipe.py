"""Transformer Engine under DeepSpeed: the recipe fp8ref builds is the one the forward runs with (clause C16d; the
suite's test of it is in conformance/), however the DeepSpeed config reaches accelerate, and
``unpatch_accelerator_for_fp8`` gives accelerate's own behaviour back (TE's default recipe, amax history 1024).

One child process (``children/deepspeed_te.py``) runs every case: DeepSpeed keeps process-wide state. It uses the
conformance suite's stand-in TE, which records the recipe each ``fp8_autocast`` receives.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import write_standin_te

CHILD = Path(__file__).resolve().parent / "children" / "deepspeed_te.py"
FP8REF_RECIPE = {"recipe": "DelayedScaling", "fp8_format": "HYBRID", "amax_history_len": 16, "amax_compute_algo": "max"}
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("deepspeed_te")
    standin = write_standin_te(work / "standin_te")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "FP8_", "PYTEST_XDIST"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(standin), *sys.path]),
        DS_ACCELERATOR="cpu",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        RANK="0",
        WORLD_SIZE="1",
        LOCAL_RANK="0",
        OMP_NUM_THREADS="1",
    )
    out = work / "result.json"
    proc = subprocess.run(
        [sys.executable, str(CHILD), "--out", str(out), "--work", str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0 and out.exists(), (
        f"child failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _case(cases: dict[str, Any], name: str) -> dict[str, Any]:
    case: dict[str, Any] = cases[name]
    assert "error" not in case, f"{name}: {case['error']}\n{case.get('traceback', '')}"
    assert case["distributed_type"].endswith("DEEPSPEED"), case
    return case


@pytest.mark.parametrize("name", ["trainer-json-path", "env"])
def test_the_forward_runs_with_fp8refs_recipe_under_deepspeed(cases: dict[str, Any], name: str) -> None:
    """``TrainingArguments(deepspeed=PATH)`` through the Trainer in LLaMA-Factory's order, and the environment
    ``accelerate launch`` sets from a DeepSpeed accelerate config."""
    case = _case(cases, name)
    assert case["autocast"] == FP8REF_RECIPE
    assert case["handlers"] == {"te_recipe_handler": "TERecipeKwargs", "fp8_recipe_handler": "FP8RecipeKwargs"}
    assert case["linear"] == {"transformer_engine.pytorch.Linear": 7, "torch.nn.modules.linear.Linear": 1}


def test_create_fp8_kwargs_gives_the_handler_the_deepspeed_path_reads(cases: dict[str, Any]) -> None:
    assert _case(cases, "env")["created"] == ["FP8RecipeKwargs"]


def test_a_callers_te_handler_is_kept_and_its_recipe_reaches_the_forward(cases: dict[str, Any]) -> None:
    case = _case(cases, "explicit-te-handler")
    assert case["autocast"] == {**FP8REF_RECIPE, "amax_history_len": 32}


def test_verify_reports_the_te_recipe_under_deepspeed(cases: dict[str, Any]) -> None:
    report = _case(cases, "trainer-json-path")["report"]
    assert report.startswith("FP8: IN EFFECT (backend TE, recipe DelayedScaling HYBRID, amax_history_len=16")
    assert "converted layers: 7" in report and "lm_head" in report


def test_unpatched_accelerate_drops_the_recipe(cases: dict[str, Any]) -> None:
    """What the patch repairs: accelerate alone wraps the forward with TE's default recipe under DeepSpeed."""
    case = _case(cases, "unpatched")
    assert case["handlers"]["fp8_recipe_handler"] is None
    assert case["autocast"] is not None and case["autocast"]["amax_history_len"] == 1024
