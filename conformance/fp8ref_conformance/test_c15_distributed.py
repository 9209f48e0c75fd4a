"""C15 distributed: FSDP2 with float8 all-gather across two real processes on the CPU (gloo).

The test starts ``python -m torch.distributed.run --nproc-per-node 2 -m fp8ref_conformance.children.fsdp_float8``
(rendezvous on 127.0.0.1 at a free port, a bounded timeout, and the whole process group killed on timeout or
failure; see :mod:`.kit.processes`). Each rank imports the implementation under test by
name, asks it for the FP8 configuration with ``fp8_enable_fsdp_float8_all_gather=True``
(``configure_fp8_environment`` then ``create_fp8_kwargs``), converts a small model with that handler's
config and module filter, shards it with FSDP2, trains a few steps on the same batch on both ranks, and
writes ``rank<R>.json``.

Why ``torch.distributed.fsdp.fully_shard`` and not accelerate's FSDP2 plugin: accelerate 1.15 switches to
``DistributedType.FSDP`` only for GPU-like multi-device types (MULTI_GPU, MULTI_XPU, MULTI_NPU, ...), never
for MULTI_CPU, so on the CPU ``Accelerator(fsdp_plugin=FullyShardedDataParallelPlugin(fsdp_version=2))`` runs
as plain MULTI_CPU and the plugin is ignored. The child builds that Accelerator anyway and records what it
did (``accelerate_is_fsdp2``); the child takes accelerate's own FSDP2 path whenever accelerate does enable it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from .implementation import Implementation
from .kit.contract import fp8_arguments
from .kit.fsdp2_ranks import NAME, NEEDS, NPROC, STEPS, gloo_skip_reason, launch
from .kit.processes import claim, read_rank_files
from .kit.verdicts import block_unless

TIMEOUT_S = 240.0
FLOAT8_WEIGHT = "WeightWithDynamicFloat8CastTensor"


@pytest.fixture(scope="module")
def fsdp_run(impl_name: str, impl: Implementation, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 2-process run shared by the C15 tests (starting it costs several seconds), or the one started early."""
    started = claim(NAME)
    judged = False
    try:
        impl.require(*NEEDS)  # the workers call these three; a module without one of them fails here, naming it
        reason = gloo_skip_reason()
        if reason:
            pytest.skip(reason)
        _require_all_gather_config(impl)
        judged = True
    finally:
        if not judged and started is not None:  # missing, skipped or blocked: the early run is not needed
            started[0].stop()
    child, out_dir = started if started is not None else (None, tmp_path_factory.mktemp("c15"))
    code, output = (child or launch(impl_name, out_dir)).wait(TIMEOUT_S)
    return {"code": code, "output": output, "ranks": read_rank_files(out_dir, "rank")}


def _require_all_gather_config(impl: Implementation) -> None:
    """C15 is about the all-gather the flag asks for: with a config that drops it (C6's defect) there is nothing
    to judge, and no two-process run is started. An exception from ``create_fp8_kwargs`` fails C15."""
    handlers = impl.create_fp8_kwargs(fp8_arguments(fp8=True, backend="torchao", all_gather=True))
    config = getattr(handlers[0], "config", None) if isinstance(handlers, list) and len(handlers) == 1 else None
    value = getattr(config, "enable_fsdp_float8_all_gather", None)
    block_unless(
        value is True,
        "C6",
        "the flag was dropped: create_fp8_kwargs(fp8_enable_fsdp_float8_all_gather=True) gave "
        + (f"a config with enable_fsdp_float8_all_gather={value!r}" if config is not None else f"{handlers!r}"[:200]),
    )


def _ranks_ok(run: dict[str, Any]) -> dict[int, dict[str, Any]]:
    ranks: dict[int, dict[str, Any]] = run["ranks"]
    errors = {rank: data["error"] for rank, data in ranks.items() if "error" in data}
    assert not errors, f"ranks failed: {errors}\n{next(iter(ranks.values())).get('traceback', '')}"
    assert run["code"] == 0, f"torch.distributed.run exited with {run['code']}:\n{run['output'][-4000:]}"
    assert sorted(ranks) == list(range(NPROC)), f"expected a result from each of {NPROC} ranks, got {sorted(ranks)}"
    return ranks


def test_c15_all_gather_flag_reaches_the_float8_config(impl: Implementation, fsdp_run: dict[str, Any]) -> None:
    """The flag given to the implementation in each rank (after ``configure_fp8_environment``) is in the config its
    handler carries into FSDP2; a rank whose config dropped it is C6's defect, seen in that process."""
    for rank, data in _ranks_ok(fsdp_run).items():
        block_unless(
            data["config_enable_fsdp_float8_all_gather"] is True,
            "C6",
            f"rank {rank}: create_fp8_kwargs(fp8_enable_fsdp_float8_all_gather=True) returned a config with "
            "enable_fsdp_float8_all_gather=False: the flag was dropped",
        )


def test_c15_sharded_float8_weights_cast_before_all_gather(impl: Implementation, fsdp_run: dict[str, Any]) -> None:
    """Every FSDP2-sharded ``Float8Linear`` weight is a ``WeightWithDynamicFloat8CastTensor`` (which layers are
    converted is C9's and C10's business; with none there is nothing to judge)."""
    for rank, data in _ranks_ok(fsdp_run).items():
        block_unless(data["float8_linear"], "C10", f"rank {rank}: the implementation's handler converted no layer")
        wrong = {fqn: cls for fqn, cls in data["weight_classes"].items() if cls != FLOAT8_WEIGHT}
        assert not wrong, (
            f"rank {rank}: sharded Float8Linear weights that are not {FLOAT8_WEIGHT} (weights all-gathered in "
            f"high precision, not float8): {wrong}"
        )


def test_c15_training_steps_run_and_ranks_agree(impl: Implementation, fsdp_run: dict[str, Any]) -> None:
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
