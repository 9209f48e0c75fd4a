"""C16 DeepSpeed: FP8 through the HF ``Trainer`` under DeepSpeed ZeRO (stages 2 and 3) on the CPU.

LLaMA-Factory ships FP8 with DeepSpeed ZeRO-3 as an example. The runs happen in child processes
(``children/deepspeed_trainer.py``, ``DS_ACCELERATOR=cpu``), because DeepSpeed keeps process-wide
state that nothing resets (its accelerator, ``deepspeed.comm``, the torch process group): it ends with the
process, so no test after these inherits it. Each process is bounded in time, has a free rendezvous port of
its own, and is killed with its whole process group on timeout.

One single-rank process runs, for ZeRO stage 2 then 3, each from a clean slate: the FP8 run with the
all-gather flag (C16c), the run without FP8 and the FP8 run (20 steps each on a fixed batch, C16a and C16b).
A second process, started at the same time, runs the FP8 run under ZeRO-3 on two CPU ranks
(``torch.distributed.run``, gloo), 3 steps; it is started only when its test is selected. The worker keeps
DeepSpeed from JIT-building its shared-memory collective op (``deepspeed_shm_comm_op``, 20 s to over a
minute with the system compiler on a fresh 2-core machine): DeepSpeed then uses plain ``torch.distributed``.
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .kit.capabilities import cuda_fp8_skip_reason, package_skip_reason
from .kit.messages import mentions_word
from .kit.processes import (
    Child,
    child_environment,
    child_module,
    free_port,
    read_rank_files,
    start,
    start_module,
    torchrun_command,
)
from .kit.trainer import LOSS_STEPS, NUM_LAYERS, PROJECTIONS, is_te_linear, is_torchao_float8, losses_close, projections
from .kit.verdicts import block_unless, reraise_recorded

CHILD = "deepspeed_trainer"
STAGES = (2, 3)
TWO_RANK_STAGE = 3
TWO_RANK_STEPS = 3
TIMEOUT_S = 300.0
ALL_GATHER_FLAG = "fp8_enable_fsdp_float8_all_gather"


@dataclass
class Launched:
    child: Child
    out: Path

    def wait(self, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Wait for the child (killing its group on timeout); the results of every rank, with the output."""
        code, output = self.child.wait(timeout)
        ranks = read_rank_files(self.out.parent, self.out.name)
        return {"code": code, "output": output, "ranks": ranks, "seconds": time.monotonic() - self.child.started}


def _launch(
    impl_name: str, out: Path, *, nproc: int, extra: list[str], what: str, accelerator: str = "cpu"
) -> Launched:
    env = child_environment(DS_ACCELERATOR=accelerator)
    args = ["--impl", impl_name, "--out", str(out), *extra]
    if nproc == 1:
        env.update({"MASTER_PORT": str(free_port()), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
        return Launched(start_module(CHILD, args, env, what), out)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return Launched(start(torchrun_command(nproc, child_module(CHILD), args), env, what), out)


def _selected_tests(request: pytest.FixtureRequest) -> set[str]:
    """Names of this module's tests in the session (after ``-k``/``-m`` selection)."""
    module = request.module
    return {
        getattr(item, "originalname", None) or item.name
        for item in request.session.items
        if getattr(item, "module", None) is module
    }


@pytest.fixture(scope="module")
def deepspeed_processes(
    request: pytest.FixtureRequest, impl_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Launched]]:
    """The worker processes the selected tests need, started together (they overlap on a 2-core machine);
    killed at the end. With only C16c selected, only the all-gather runs happen."""
    reason = package_skip_reason("deepspeed")
    if reason:
        pytest.skip(reason)
    selected = _selected_tests(request)
    out_dir = tmp_path_factory.mktemp("c16")
    runs = ["all_gather"]
    if any(name.startswith(("test_c16a_zero_", "test_c16b_")) for name in selected):
        runs += ["reference", "fp8"]
    launched = {
        "single": _launch(
            impl_name, out_dir / "single.json", nproc=1, extra=["--runs", ",".join(runs)], what="the DeepSpeed run"
        )
    }
    if "test_c16a_zero3_two_cpu_ranks" in selected:
        launched["two"] = _launch(
            impl_name,
            out_dir / "two.json",
            nproc=2,
            extra=["--stages", str(TWO_RANK_STAGE), "--runs", "fp8", "--steps", str(TWO_RANK_STEPS)],
            what="the two-rank DeepSpeed run",
        )
    yield launched
    for item in launched.values():
        item.child.stop()


def _ok(run: dict[str, Any], nproc: int) -> dict[int, dict[str, Any]]:
    ranks: dict[int, dict[str, Any]] = run["ranks"]
    errors = {rank: f"{data['error']}\n{data.get('traceback', '')}" for rank, data in ranks.items() if "error" in data}
    assert not errors, f"worker failed: {errors}"
    assert run["code"] == 0, f"the DeepSpeed worker exited with {run['code']}:\n{run['output'][-4000:]}"
    assert sorted(ranks) == list(range(nproc)), f"expected results from ranks 0..{nproc - 1}, got {sorted(ranks)}"
    return ranks


@pytest.fixture(scope="module")
def single_rank(deepspeed_processes: dict[str, Launched]) -> dict[str, Any]:
    stages: dict[str, Any] = _ok(deepspeed_processes["single"].wait(), 1)[0]["stages"]
    return stages


@pytest.fixture(scope="module")
def two_ranks(deepspeed_processes: dict[str, Launched]) -> dict[int, dict[str, Any]]:
    return _ok(deepspeed_processes["two"].wait(), 2)


def check_fp8_run(run: dict[str, Any], steps: int, where: str, *, is_fp8: Any = is_torchao_float8) -> None:
    """C16a for one run: DeepSpeed in use, every projection float8, ``lm_head`` not, finite losses, and no
    warning from ``verify_fp8_status``. A run the patch kept from starting (C13d) blocks the test."""
    reraise_recorded(run)
    assert "error" not in run, f"{where}: the training run failed: {run.get('error')}\n{run.get('traceback', '')}"
    assert run["distributed_type"].endswith("DEEPSPEED"), f"{where}: the Trainer did not run DeepSpeed: {run}"
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
    assert not run["verify_warnings"], (
        f"{where}: verify_fp8_status logged at WARNING or above although FP8 is in effect: {run['verify_warnings']}"
    )


# --------------------------------------------------------------------------- CPU, one rank


@pytest.mark.parametrize("stage", STAGES)
def test_c16a_zero_trains_with_float8_projections(
    impl: types.ModuleType, single_rank: dict[str, Any], stage: int
) -> None:
    """C16a: under ZeRO ``stage`` the Trainer trains, every projection is a torchao ``Float8Linear``,
    ``lm_head`` is not, and ``verify_fp8_status`` logs no warning."""
    check_fp8_run(single_rank[str(stage)]["fp8"], LOSS_STEPS, f"ZeRO-{stage}")


@pytest.mark.parametrize("stage", STAGES)
def test_c16b_zero_loss_tracks_the_run_without_fp8(
    impl: types.ModuleType, single_rank: dict[str, Any], stage: int
) -> None:
    """C16b: after 20 steps on a fixed batch the FP8 loss is within 10% of the same run without FP8 (same
    DeepSpeed config, same seed), and the loss went down: the float8 weights really train under ZeRO."""
    runs = single_rank[str(stage)]
    for label in ("reference", "fp8"):
        run = runs[label]
        reraise_recorded(run)
        assert "error" not in run, f"ZeRO-{stage} {label} run failed: {run.get('error')}\n{run.get('traceback', '')}"
    fp8_projections = [cls for cls in projections(runs["fp8"]["classes"]).values() if is_torchao_float8(cls)]
    block_unless(
        fp8_projections,
        "C16a",
        f"under ZeRO-{stage} the FP8 run has no float8 projection: whether float8 weights train cannot be judged",
    )
    reference_fp8 = {fqn: cls for fqn, cls in runs["reference"]["classes"].items() if is_torchao_float8(cls)}
    assert not reference_fp8, f"the run without FP8 has float8 layers (state leaked between runs): {reference_fp8}"
    problem = losses_close(runs["fp8"]["losses"], runs["reference"]["losses"])
    assert problem is None, f"ZeRO-{stage}: {problem}"


@pytest.mark.parametrize("stage", STAGES)
def test_c16c_all_gather_flag_under_deepspeed_is_a_clear_error(
    impl: types.ModuleType, single_rank: dict[str, Any], stage: int
) -> None:
    """C16c: ``fp8_enable_fsdp_float8_all_gather=True`` under DeepSpeed is a ``ValueError`` naming the flag and
    DeepSpeed, raised before the first training step (not torch's "Couldn't swap Float8Linear.weight")."""
    run = single_rank[str(stage)]["all_gather"]
    reraise_recorded(run)
    assert "error" not in run, f"ZeRO-{stage}: the all-gather run failed: {run.get('error')}"
    assert run["raised"], (
        f"ZeRO-{stage}: training with {ALL_GATHER_FLAG}=True under DeepSpeed raised nothing "
        f"({run['steps_before_error']} steps ran): the FSDP float8 all-gather was silently dropped or ignored"
    )
    where = f"ZeRO-{stage}: {run['type']} raised in {run['phase']}"
    assert run["is_value_error"], f"{where} is not a ValueError: {run['message'][:500]}\n{run['traceback']}"
    assert run["steps_before_error"] == 0, f"{where} after {run['steps_before_error']} training steps"
    message = run["message"]
    assert "enable_fsdp_float8_all_gather" in message, f"{where}: the message does not name the flag: {message}"
    assert mentions_word(message, "DeepSpeed"), f"{where}: the message does not name DeepSpeed: {message}"


# --------------------------------------------------------------------------- CPU, two ranks


def test_c16a_zero3_two_cpu_ranks(impl: types.ModuleType, two_ranks: dict[int, dict[str, Any]]) -> None:
    """C16a on two CPU ranks under ZeRO-3 (``torch.distributed.run``, gloo): both ranks train with float8
    projections, verify quietly, and log the same loss at every step (the Trainer averages it over ranks)."""
    losses = {}
    for rank, data in two_ranks.items():
        run = data["stages"][str(TWO_RANK_STAGE)]["fp8"]
        check_fp8_run(run, TWO_RANK_STEPS, f"rank {rank} of 2, ZeRO-{TWO_RANK_STAGE}")
        losses[rank] = run["losses"]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6), f"the ranks disagree on the loss: {losses}"
    assert losses[0][-1] < losses[0][0], f"the loss did not decrease over {TWO_RANK_STEPS} steps: {losses[0]}"


# --------------------------------------------------------------------------- GPU


def _cuda_skip_reason() -> str | None:
    return cuda_fp8_skip_reason() or package_skip_reason("deepspeed")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torchao", "te"])
def test_c16a_cuda_zero3(impl_name: str, impl: types.ModuleType, tmp_path: Path, backend: str) -> None:
    """C16a and C16b on CUDA under ZeRO-3, bf16, with real float8 kernels: torchao ``Float8Linear`` or
    Transformer Engine ``Linear`` projections, ``lm_head`` kept, no verify warning, loss within 10%."""
    reason = _cuda_skip_reason()
    if reason:
        pytest.skip(reason)
    if backend == "te":
        try:
            import transformer_engine.pytorch as te
        except ImportError as exc:
            pytest.skip(
                f"transformer_engine.pytorch is not importable ({exc}): pip install transformer-engine[pytorch]"
            )
        if getattr(te, "__fp8_conformance_standin__", False):
            pytest.skip("only the conformance stand-in of transformer_engine is importable; it has no kernels")
    launched = _launch(
        impl_name,
        tmp_path / "cuda.json",
        nproc=1,
        extra=["--stages", "3", "--runs", "reference,fp8", "--backend", backend, "--cuda"],
        what=f"the CUDA ZeRO-3 run ({backend})",
        accelerator="cuda",
    )
    run = _ok(launched.wait(), 1)[0]["stages"]["3"]
    check_fp8_run(
        run["fp8"], LOSS_STEPS, f"CUDA ZeRO-3 {backend}", is_fp8=is_te_linear if backend == "te" else is_torchao_float8
    )
    problem = losses_close(run["fp8"]["losses"], run["reference"]["losses"])
    assert problem is None, f"CUDA ZeRO-3 {backend}: {problem}"
