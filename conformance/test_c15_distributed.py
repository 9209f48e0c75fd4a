"""C15 distributed: FSDP2 with float8 all-gather across two real processes on the CPU (gloo).

The test starts ``python -m torch.distributed.run --nproc-per-node 2`` on the worker script
``conformance/workers/fsdp_float8.py`` (rendezvous on 127.0.0.1 at a free port, a bounded timeout, and the
whole process group killed on timeout or failure). Each rank imports the implementation under test by
name, asks it for the FP8 configuration with ``fp8_enable_fsdp_float8_all_gather=True``
(``configure_fp8_environment`` then ``create_fp8_kwargs``), converts a small model with that handler's
config and module filter, shards it with FSDP2, trains a few steps on the same batch on both ranks, and
writes ``rank<R>.json``.

Why ``torch.distributed.fsdp.fully_shard`` and not accelerate's FSDP2 plugin: accelerate 1.15 switches to
``DistributedType.FSDP`` only for GPU-like multi-device types (MULTI_GPU, MULTI_XPU, MULTI_NPU, ...), never
for MULTI_CPU, so on the CPU ``Accelerator(fsdp_plugin=FullyShardedDataParallelPlugin(fsdp_version=2))`` runs
as plain MULTI_CPU and the plugin is ignored. The worker builds that Accelerator anyway and records what it
did (``accelerate_is_fsdp2``); it takes accelerate's own FSDP2 path whenever accelerate does enable it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from .helpers import fp8_env_prefixes
from .workers import worker_path

WORKER = "fsdp_float8.py"
NPROC = 2
STEPS = 3
TIMEOUT_S = 240.0
#: The worker's model: two residual MLP blocks (eligible) and an lm_head (excluded by C9c).
EXPECTED_FLOAT8 = ["layers.0.down_proj", "layers.0.up_proj", "layers.1.down_proj", "layers.1.up_proj"]
FLOAT8_WEIGHT = "WeightWithDynamicFloat8CastTensor"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment() -> dict[str, str]:
    """This process's environment without FP8/accelerate settings, with this process's ``sys.path`` (so
    the implementation and the suite import in the ranks as they do here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(fp8_env_prefixes())}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["OMP_NUM_THREADS"] = "1"
    env["MASTER_ADDR"] = "127.0.0.1"
    env.pop("MASTER_PORT", None)
    return env


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Terminate the launcher and its ranks (they share its session), then make sure they are gone."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def launch(impl_name: str, out_dir: Path, *, timeout: float = TIMEOUT_S) -> tuple[int, str]:
    """Run the worker under ``torch.distributed.run`` with two CPU ranks; returns (exit code, output)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(NPROC),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        str(worker_path(WORKER)),
        "--impl",
        impl_name,
        "--out",
        str(out_dir),
        "--steps",
        str(STEPS),
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_environment(),
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        output, _ = proc.communicate()
        pytest.fail(f"the 2-process FSDP2 run did not finish within {timeout:.0f} s:\n{output[-4000:]}")
    finally:
        _kill_group(proc)
    return proc.returncode, output


def read_ranks(out_dir: Path) -> dict[int, dict[str, Any]]:
    ranks: dict[int, dict[str, Any]] = {}
    for path in sorted(out_dir.glob("rank*.json")):
        data = json.loads(path.read_text())
        ranks[int(data["rank"])] = data
    return ranks


@pytest.fixture(scope="module")
def fsdp_run(impl_name: str, impl: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 2-process run shared by the C15 tests (starting it costs several seconds)."""
    import torch.distributed as dist

    # The workers call these three; a module without one of them fails here, naming it.
    impl.require("configure_fp8_environment", "create_fp8_kwargs", "get_fp8_mixed_precision")

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this torch build has no gloo backend for torch.distributed")
    out_dir = tmp_path_factory.mktemp("c15")
    code, output = launch(impl_name, out_dir)
    return {"code": code, "output": output, "ranks": read_ranks(out_dir)}


def _ranks_ok(run: dict[str, Any]) -> dict[int, dict[str, Any]]:
    ranks: dict[int, dict[str, Any]] = run["ranks"]
    errors = {rank: data["error"] for rank, data in ranks.items() if "error" in data}
    assert not errors, f"ranks failed: {errors}\n{next(iter(ranks.values())).get('traceback', '')}"
    assert run["code"] == 0, f"torch.distributed.run exited with {run['code']}:\n{run['output'][-4000:]}"
    assert sorted(ranks) == list(range(NPROC)), f"expected a result from each of {NPROC} ranks, got {sorted(ranks)}"
    return ranks


def test_c15_all_gather_flag_reaches_the_float8_config(impl: types.ModuleType, fsdp_run: dict[str, Any]) -> None:
    """The flag given to the implementation is in the config its handler carries into FSDP2."""
    for rank, data in _ranks_ok(fsdp_run).items():
        assert data["config_enable_fsdp_float8_all_gather"] is True, (
            f"rank {rank}: create_fp8_kwargs(fp8_enable_fsdp_float8_all_gather=True) returned a config with "
            "enable_fsdp_float8_all_gather=False: the flag was dropped"
        )


def test_c15_sharded_float8_weights_cast_before_all_gather(impl: types.ModuleType, fsdp_run: dict[str, Any]) -> None:
    """Every FSDP2-sharded ``Float8Linear`` weight is a ``WeightWithDynamicFloat8CastTensor``."""
    for rank, data in _ranks_ok(fsdp_run).items():
        assert data["float8_linear"] == EXPECTED_FLOAT8, f"rank {rank}: Float8Linear layers {data['float8_linear']}"
        assert data["lm_head_class"] != "Float8Linear", f"rank {rank}: lm_head was converted"
        wrong = {fqn: cls for fqn, cls in data["weight_classes"].items() if cls != FLOAT8_WEIGHT}
        assert not wrong, (
            f"rank {rank}: sharded Float8Linear weights that are not {FLOAT8_WEIGHT} (weights all-gathered in "
            f"high precision, not float8): {wrong}"
        )


def test_c15_training_steps_run_and_ranks_agree(impl: types.ModuleType, fsdp_run: dict[str, Any]) -> None:
    """A few steps run, the loss is finite and decreasing, both ranks report the same loss at every step, and
    it follows the same model trained without sharding (same batch on both ranks, so the averaged sharded
    gradients equal the unsharded ones)."""
    ranks = _ranks_ok(fsdp_run)
    first = ranks[0]["losses"]
    assert len(first) == STEPS and all(math.isfinite(x) for x in first), f"losses {first}"
    assert first[-1] < first[0], f"the loss did not decrease over {STEPS} steps: {first}"
    for rank, data in ranks.items():
        assert data["all_losses"] == [r["losses"] for r in sorted(ranks.values(), key=lambda r: r["rank"])]
        assert data["losses"] == pytest.approx(first, rel=1e-5), f"rank {rank} disagrees: {data['losses']} vs {first}"
        assert data["losses"] == pytest.approx(data["unsharded_losses"], rel=1e-3), (
            f"rank {rank}: FSDP2 losses {data['losses']} differ from unsharded {data['unsharded_losses']}"
        )
