"""Each known upstream defect (fp8ref/data/upstream_defects.json) is listed for the installed versions exactly
where the installed packages show it: the entry's version range agrees with behaviour, in whichever environment
these tests run (the main one, and tox's ``oldest`` and ``newest``). A defect only a GPU shows has a GPU test."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import GradScalerKwargs
from torch import nn

from fp8ref.doctor import run_doctor
from fp8ref.upstream_defects import applicable_defects, load_defects

APPLICABLE = {defect.id for defect in applicable_defects()}


def test_every_entry_is_well_formed_and_has_a_test_here() -> None:
    ids = [defect.id for defect in load_defects()]
    assert len(ids) == len(set(ids)) and ids
    tested = {name for name in globals() if name.startswith("test_")}
    for defect_id in ids:
        assert f"test_{defect_id.replace('-', '_').replace('.', '_')}" in tested, f"no test shows {defect_id}"


def test_doctor_lists_exactly_the_entries_that_apply_here() -> None:
    report = run_doctor()
    assert {defect.id for defect in report.defects} == APPLICABLE
    rendered = report.render()
    assert all(defect_id in rendered for defect_id in APPLICABLE)
    assert [d["id"] for d in report.to_dict()["upstream_defects"]] == [d.id for d in report.defects]


def test_accelerate_deepspeed_drops_te_recipe() -> None:
    """The DeepSpeed path hands apply_fp8_autowrap the deprecated handler alone (read in the installed source)."""
    source = inspect.getsource(Accelerator._prepare_deepspeed)
    drops = "apply_fp8_autowrap(model, self.fp8_recipe_handler)" in source
    assert drops or "te_recipe_handler" in source, "accelerate's DeepSpeed path no longer builds a TE forward"
    assert ("accelerate-deepspeed-drops-te-recipe" in APPLICABLE) is drops


def test_accelerate_removed_fp8recipekwargs() -> None:
    removed = not hasattr(importlib.import_module("accelerate.utils"), "FP8RecipeKwargs")
    assert ("accelerate-removed-fp8recipekwargs" in APPLICABLE) is removed


def test_accelerate_prepare_ao_crash_fp8_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable alone sends an Accelerator without FP8 down the torchao path, which needs a recipe."""
    pytest.importorskip("torchao.float8", reason="the crash is on accelerate's torchao path: torchao not installed")
    monkeypatch.setenv("ACCELERATE_FP8_BACKEND", "AO")
    accelerator = Accelerator(mixed_precision="no")
    try:
        accelerator.prepare(nn.Sequential(nn.Linear(16, 16)))
        crashes = False
    except AttributeError as exc:
        crashes = "'NoneType' object has no attribute 'config'" in str(exc)
    assert ("accelerate-prepare-ao-crash-fp8-off" in APPLICABLE) is crashes


def test_accelerate_unwrap_model_compiled_submodule() -> None:
    """A model that only contains a compiled module (nothing compiles until it is called)."""
    from accelerate.utils import extract_model_from_parallel

    model = nn.Sequential()
    model.add_module("block", torch.compile(nn.Linear(16, 16)))
    try:
        extract_model_from_parallel(model)
        crashes = False
    except KeyError as exc:
        crashes = "_orig_mod" in str(exc)
    assert ("accelerate-unwrap-model-compiled-submodule" in APPLICABLE) is crashes


def test_accelerate_to_kwargs_drops_default_fields() -> None:
    """KwargsHandler.to_kwargs, the method apply_fp8_autowrap builds TE's recipe with, on a handler that needs no
    backend (TERecipeKwargs needs Transformer Engine installed): a field set to its default is left out."""
    default_scale = GradScalerKwargs().init_scale
    drops = "init_scale" not in GradScalerKwargs(init_scale=default_scale).to_kwargs()
    assert "growth_interval" in GradScalerKwargs(growth_interval=7).to_kwargs()  # a field off its default is kept
    assert ("accelerate-to-kwargs-drops-default-fields" in APPLICABLE) is drops


def test_peft_0_18_1_torchao_0_18() -> None:
    """peft's LoRA dispatch for torchao, imported as get_peft_model runs it, in a fresh interpreter."""
    pytest.importorskip("peft", reason="peft is not installed: nothing to import beside torchao")
    pytest.importorskip("torchao", reason="torchao is not installed: peft's torchao dispatch never runs")
    code = (
        "import inspect, peft.tuners.lora.torchao as t\n"
        "src = inspect.getsource(t.dispatch_torchao)\n"
        "ns = {}\n"
        "for line in src.splitlines():\n"
        "    line = line.strip()\n"
        "    if line.startswith('from torchao'):\n"
        "        exec(line, ns)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    fails = result.returncode != 0 and "LinearActivationQuantizedTensor" in result.stderr
    assert result.returncode == 0 or fails, result.stderr[-2000:]
    assert ("peft-0.18.1-torchao-0.18" in APPLICABLE) is fails


@pytest.mark.gpu
def test_te_delayedscaling_under_torch_compile() -> None:
    """Only a GPU with Transformer Engine shows it: TE refuses DelayedScaling in a compiled forward."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("needs a CUDA device of compute capability 8.9 or more (Ada/Hopper)")
    te = pytest.importorskip("transformer_engine.pytorch", reason="Transformer Engine is not installed")
    from transformer_engine.common.recipe import DelayedScaling

    layer = te.Linear(64, 64).cuda()
    forward = torch.compile(lambda x: layer(x))
    try:
        with te.fp8_autocast(enabled=True, fp8_recipe=DelayedScaling()):
            forward(torch.randn(32, 64, device="cuda"))
        refuses = False
    except Exception as exc:  # whatever TE raises is the observation; its text is checked
        refuses = "DelayedScaling" in str(exc) or "compile" in str(exc)
    assert ("te-delayedscaling-under-torch-compile" in APPLICABLE) is refuses


def test_verify_works_around_the_unwrap_crash_wherever_unwrap_model_raises_it() -> None:
    """Where unwrap_model raises accelerate 1.11's KeyError, verify still sees the prepared model; another KeyError
    is not swallowed."""
    from types import SimpleNamespace

    from fp8ref.verify.layers import prepared_models

    model = nn.Sequential()
    model.add_module("block", torch.compile(nn.Linear(16, 16)))

    def crashing_unwrap(module: nn.Module) -> nn.Module:
        raise KeyError("_orig_mod")

    def other_crash(module: nn.Module) -> nn.Module:
        raise KeyError("something else")

    assert prepared_models(SimpleNamespace(_models=[model], unwrap_model=crashing_unwrap)) == [model]
    with pytest.raises(KeyError, match="something else"):
        prepared_models(SimpleNamespace(_models=[model], unwrap_model=other_crash))
