"""C16 DeepSpeed: FP8 through the HF ``Trainer`` under DeepSpeed ZeRO (stages 2 and 3) on the CPU.

LLaMA-Factory ships FP8 with DeepSpeed ZeRO-3 as an example, and passes the DeepSpeed config as the path of a JSON
file. The runs happen in one child process (``children/deepspeed_trainer.py``, ``DS_ACCELERATOR=cpu``; scheduled by
:mod:`.kit.deepspeed_run`), because DeepSpeed keeps process-wide state that nothing resets (its accelerator,
``deepspeed.comm``, the torch process group): it ends with the process, so no test after these inherits it.

For ZeRO-2 with the config as a dict, and ZeRO-3 with the config as a JSON path, it makes, each from a clean slate,
the FP8 run with the all-gather flag (C16c), the run without FP8 and the torchao FP8 run (20 steps each on a fixed
batch, C16a, C16b), the Transformer Engine run with the suite's stand-in TE (C16d). Verify under DeepSpeed (C12a,
C12d) is judged in ``test_c16_c12_verify_deepspeed.py``, G5 with the other G clauses. A test whose function the
module lacks says ``missing`` before it looks at a run. The worker keeps DeepSpeed from JIT-building its
shared-memory collective op (``deepspeed_shm_comm_op``): DeepSpeed then uses plain ``torch.distributed``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from .implementation import Implementation
from .kit.capabilities import real_te_skip_reason
from .kit.deepspeed_run import (
    CASES,
    Pending,
    assert_ran,
    case_label,
    check_te_run,
    cuda_run,
    cuda_skip_reason,
    reads,
)
from .kit.messages import names_all_gather_and_deepspeed
from .kit.trainer import LOSS_STEPS, NUM_LAYERS, PROJECTIONS, is_te_linear, is_torchao_float8, losses_close, projections
from .kit.verdicts import block_unless, reraise_recorded
from .kit.verify_outcome import assert_quiet, outcome_from_dict

ALL_GATHER_FLAG = "fp8_enable_fsdp_float8_all_gather"


def check_fp8_run(run: dict[str, Any], steps: int, where: str, *, is_fp8: Any = is_torchao_float8) -> None:
    """C16a for one run: DeepSpeed in use, every projection float8, ``lm_head`` not, finite losses, and
    ``verify_fp8_status`` after ``train()`` quiet (the Trainer runs eagerly: the C12e notice is allowed)."""
    reraise_recorded(run)
    assert_ran(run, where)
    found = projections(run["classes"])
    assert len(found) == len(PROJECTIONS) * NUM_LAYERS, f"{where}: projections found {sorted(found)}"
    not_fp8 = {fqn: cls for fqn, cls in found.items() if not is_fp8(cls)}
    assert not not_fp8, (
        f"{where}: these projections are not float8 after Trainer.train() under DeepSpeed (the Accelerator had "
        f"fp8_enabled={run['fp8_enabled']}): {not_fp8}"
    )
    heads = {fqn: cls for fqn, cls in run["classes"].items() if fqn.rsplit(".", 1)[-1] == "lm_head"}
    assert len(heads) == 1, f"{where}: expected one lm_head, found {heads}"
    assert not any(is_fp8(cls) for cls in heads.values()), f"{where}: lm_head was converted: {heads}"
    losses = run["losses"]
    assert len(losses) == steps and all(math.isfinite(x) for x in losses), f"{where}: losses {losses}"
    assert_quiet(outcome_from_dict(run["verify"]["after"]), f"{where}: FP8 is in effect after train()")


# --------------------------------------------------------------------------- CPU, one rank


@reads("fp8")
@pytest.mark.parametrize("case", CASES)
def test_c16a_zero_trains_with_float8_projections(impl: Implementation, deepspeed_run: Pending, case: str) -> None:
    """C16a: under ZeRO the Trainer trains, every projection is a torchao ``Float8Linear``, ``lm_head`` is not,
    and ``verify_fp8_status`` is quiet."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    check_fp8_run(deepspeed_run.runs(case)["fp8"], LOSS_STEPS, case_label(case))


@reads("reference", "fp8")
@pytest.mark.parametrize("case", CASES)
def test_c16b_zero_loss_tracks_the_run_without_fp8(impl: Implementation, deepspeed_run: Pending, case: str) -> None:
    """C16b: after 20 steps on a fixed batch the FP8 loss is within 10% of the same run without FP8 (same
    DeepSpeed config, same seed), and the loss went down: the float8 weights really train under ZeRO."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    runs = deepspeed_run.runs(case)
    for label in ("reference", "fp8"):
        run = runs[label]
        reraise_recorded(run)
        assert "error" not in run, (
            f"{case_label(case)} {label} run failed: {run.get('error')}\n{run.get('traceback', '')}"
        )
    fp8_projections = [cls for cls in projections(runs["fp8"]["classes"]).values() if is_torchao_float8(cls)]
    block_unless(
        fp8_projections,
        "C16a",
        f"under {case_label(case)} the FP8 run has no float8 projection: whether float8 weights train cannot be judged",
    )
    reference_fp8 = {fqn: cls for fqn, cls in runs["reference"]["classes"].items() if is_torchao_float8(cls)}
    assert not reference_fp8, f"the run without FP8 has float8 layers (state leaked between runs): {reference_fp8}"
    problem = losses_close(runs["fp8"]["losses"], runs["reference"]["losses"])
    assert problem is None, f"{case_label(case)}: {problem}"


@reads("all_gather")
@pytest.mark.parametrize("case", CASES)
def test_c16c_all_gather_flag_under_deepspeed_is_a_clear_error(
    impl: Implementation, deepspeed_run: Pending, case: str
) -> None:
    """C16c: ``fp8_enable_fsdp_float8_all_gather=True`` under DeepSpeed is a ``ValueError`` naming the flag and
    DeepSpeed (in any letter case, in any wording), raised before the first training step from any of the places
    the contract allows (configure, ``create_fp8_kwargs``, the patch, ``Accelerator()``, ``prepare``), not torch's
    "Couldn't swap Float8Linear.weight"."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    run = deepspeed_run.runs(case)["all_gather"]
    reraise_recorded(run)
    where = case_label(case)
    assert "error" not in run, f"{where}: the all-gather run failed: {run.get('error')}"
    assert run["raised"], (
        f"{where}: training with {ALL_GATHER_FLAG}=True under DeepSpeed raised nothing "
        f"({run['steps_before_error']} steps ran): the FSDP float8 all-gather was silently dropped or ignored"
    )
    where = f"{where}: {run['type']} raised in {run['phase']}"
    assert run["is_value_error"], f"{where} is not a ValueError: {run['message'][:500]}\n{run['traceback']}"
    assert run["steps_before_error"] == 0, f"{where} after {run['steps_before_error']} training steps"
    assert names_all_gather_and_deepspeed(run["message"]), (
        f"{where}: the message does not name both the flag ({ALL_GATHER_FLAG}) and DeepSpeed: {run['message']}"
    )


@reads("te")
@pytest.mark.parametrize("case", CASES)
def test_c16d_zero_te_forward_runs_with_the_c7_recipe(impl: Implementation, deepspeed_run: Pending, case: str) -> None:
    """C16d on the CPU with the suite's stand-in Transformer Engine (high precision; TE's FP8 state records which
    recipe is in effect where each TE layer runs)."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    check_te_run(deepspeed_run.runs(case)["te"], f"{case_label(case)}, Transformer Engine (the suite's stand-in)")


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torchao", "te"])
def test_c16a_cuda_zero3(impl_name: str, impl: Implementation, tmp_path: Path, backend: str) -> None:
    """C16a and C16b on CUDA under ZeRO-3, bf16, with real float8 kernels: torchao ``Float8Linear`` or
    Transformer Engine ``Linear`` projections, ``lm_head`` kept, no verify warning, loss within 10%."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    reason = cuda_skip_reason() or (real_te_skip_reason() if backend == "te" else None)
    if reason:
        pytest.skip(reason)
    run_name = "fp8" if backend == "torchao" else "te"
    pending = cuda_run(
        impl_name, tmp_path / "cuda.json", f"3-path:reference,{run_name}", f"the CUDA ZeRO-3 run ({backend})", runs=2
    )
    runs = pending.runs("3-path")
    where = f"CUDA ZeRO-3 {backend}"
    check_fp8_run(runs[run_name], LOSS_STEPS, where, is_fp8=is_te_linear if backend == "te" else is_torchao_float8)
    problem = losses_close(runs[run_name]["losses"], runs["reference"]["losses"])
    assert problem is None, f"{where}: {problem}"
