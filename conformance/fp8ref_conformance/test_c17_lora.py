"""C17 LoRA (PEFT): the frozen base layers go to float8, the adapters never do, and only the adapters train.

On the CPU with torchao: a tiny Llama wrapped by ``peft.get_peft_model`` (LoRA on the seven projections,
``lora_dropout=0``) trains through the HF ``Trainer`` after ``configure_fp8_environment(a)`` and
``patch_accelerator_for_fp8()``, at rank 16 (adapter dimensions divisible by 16: only an adapter rule keeps
them out) and at rank 8 (the divisibility rule alone would). For each rank one module-scoped fixture runs,
in this process, the same LoRA training without FP8, then with FP8 (20 steps each on a fixed batch), and the
a/b/c tests read it. The filter tests (C17b) ask the implementation's ``module_filter_func`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from .implementation import Implementation
from .kit.capabilities import package_skip_reason
from .kit.contract import LORA_ADAPTER_COMPONENTS, is_lora_adapter_fqn
from .kit.env import env_snapshot, fp8_env_prefixes
from .kit.isolation import reset_accelerate_state
from .kit.models import tiny_llama
from .kit.strategies import fqns, suite_settings
from .kit.trainer import (
    LOSS_STEPS,
    NUM_LAYERS,
    PROJECTIONS,
    RunRecord,
    is_torchao_float8,
    losses_close,
    run_trainer,
    training_arguments,
)
from .kit.verdicts import block_unless
from .kit.verify_outcome import assert_quiet, outcome_from_dict

RANKS = (16, 8)
#: The clause's loss comparison is at rank 16; at rank 8 a short FP8 run checks a, b and what trains.
LOSS_RANK = 16
SHORT_STEPS = 3
PROPERTY = suite_settings()
Filter = Callable[[nn.Module, str], Any]


def lora_model(rank: int) -> Any:
    """The tiny Llama with LoRA adapters of ``rank`` on the seven projections; the same weights every call."""
    from peft import LoraConfig, get_peft_model

    model = tiny_llama(seed=0)
    torch.manual_seed(1)  # the adapters' initialisation
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(PROJECTIONS))
    return get_peft_model(model, config)


def _lora_runs(impl: Implementation, out: Path, rank: int) -> dict[str, Any]:
    """At rank 16, the LoRA run without FP8 then with FP8 (20 steps each); at rank 8 a short FP8 run.
    The environment is restored here, ``Accelerator`` by the suite's plugin after the test that set the
    fixture up."""
    reason = package_skip_reason("peft")
    if reason:
        pytest.skip(reason)
    steps = LOSS_STEPS if rank == LOSS_RANK else SHORT_STEPS
    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        reference = None
        if rank == LOSS_RANK:
            reset_accelerate_state()
            reference = run_trainer(
                None, training_arguments(out / "reference", fp8=False, steps=steps), lora_model(rank)
            )
        reset_accelerate_state()
        fp8 = run_trainer(
            impl, training_arguments(out / "fp8", fp8=True, steps=steps), lora_model(rank), track_parameters=True
        )
        reset_accelerate_state()
    return {"rank": rank, "reference": reference, "fp8": fp8}


@pytest.fixture(scope="module")
def lora16(impl: Implementation, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _lora_runs(impl, tmp_path_factory.mktemp("c17-rank16"), 16)


@pytest.fixture(scope="module")
def lora8(impl: Implementation, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _lora_runs(impl, tmp_path_factory.mktemp("c17-rank8"), 8)


@pytest.fixture(params=RANKS, ids=[f"rank{r}" for r in RANKS])
def lora_runs(request: pytest.FixtureRequest) -> dict[str, Any]:
    runs: dict[str, Any] = request.getfixturevalue(f"lora{request.param}")
    return runs


def _base_layers(run: RunRecord) -> dict[str, str]:
    return {
        fqn: cls
        for fqn, cls in run.classes.items()
        if fqn.endswith(".base_layer") and fqn.rsplit(".", 2)[-2] in PROJECTIONS
    }


def _adapter_layers(run: RunRecord) -> dict[str, str]:
    """Adapter modules that hold a weight: ``...lora_A.default``, ``...lora_B.default``."""
    return {
        fqn: cls
        for fqn, cls in run.classes.items()
        if is_lora_adapter_fqn(fqn) and fqn.rsplit(".", 1)[-1] not in LORA_ADAPTER_COMPONENTS
    }


# --------------------------------------------------------------------------- training runs


def test_c17a_frozen_base_layers_are_float8(impl: Implementation, lora_runs: dict[str, Any]) -> None:
    """C17a: every frozen base layer (``...q_proj.base_layer``, ...) is a torchao ``Float8Linear`` after
    ``Trainer.train()``, and ``verify_fp8_status`` is quiet (the Trainer runs eagerly: the C12e notice is allowed)."""
    impl.require("verify_fp8_status")
    run: RunRecord = lora_runs["fp8"]
    base = _base_layers(run)
    assert len(base) == len(PROJECTIONS) * NUM_LAYERS, f"base layers found: {sorted(base)}"
    not_fp8 = {fqn: cls for fqn, cls in base.items() if not is_torchao_float8(cls)}
    assert not not_fp8, (
        f"rank {lora_runs['rank']}: frozen base layers not converted to float8 (the Accelerator had "
        f"fp8_enabled={run.fp8_enabled}): {not_fp8}"
    )
    assert_quiet(outcome_from_dict(run.verify["after"]), "FP8 is in effect (frozen base layers are float8)")


def test_c17b_no_adapter_layer_is_converted(lora_runs: dict[str, Any]) -> None:
    """C17b: no LoRA adapter layer (a FQN component ``lora_A``/``lora_B``/...) is float8, whatever the rank."""
    run: RunRecord = lora_runs["fp8"]
    adapters = _adapter_layers(run)
    assert len(adapters) == 2 * len(PROJECTIONS) * NUM_LAYERS, f"adapter layers found: {sorted(adapters)}"
    converted = sorted(fqn for fqn, cls in run.classes.items() if is_lora_adapter_fqn(fqn) and is_torchao_float8(cls))
    assert not converted, (
        f"rank {lora_runs['rank']}: {len(converted)} LoRA adapter layers were converted to float8 (rank-sized "
        f"GEMMs, and the only weights that train): {converted[:6]}"
    )


def test_c17c_only_adapter_weights_train(lora_runs: dict[str, Any]) -> None:
    """C17c: only adapter weights change in training, and every one of them does."""
    run: RunRecord = lora_runs["fp8"]
    changed = set(run.changed)
    adapters = {name for name in [*run.changed, *run.unchanged] if is_lora_adapter_fqn(name)}
    assert adapters, "no adapter parameters found in the trained model"
    frozen_changed = sorted(changed - adapters)
    assert not frozen_changed, f"parameters outside the adapters changed in training: {frozen_changed[:6]}"
    idle = sorted(adapters - changed)
    assert not idle, f"adapter parameters that did not train: {idle[:6]}"


def test_c17c_loss_tracks_the_run_without_fp8_rank16(lora16: dict[str, Any]) -> None:
    """C17c: after 20 steps on a fixed batch the rank-16 FP8 LoRA loss is within 10% of the same LoRA run
    without FP8 (same seed, same adapters' initialisation). Without float8 base layers (C17a) there is nothing
    to compare."""
    base = _base_layers(lora16["fp8"])
    block_unless(
        base and all(is_torchao_float8(cls) for cls in base.values()),
        "C17a",
        "the frozen base layers of the FP8 LoRA run are not float8: its loss says nothing about FP8",
    )
    problem = losses_close(lora16["fp8"].losses, lora16["reference"].losses)
    assert problem is None, f"rank 16: {problem}"


# --------------------------------------------------------------------------- the filter rule


@pytest.mark.parametrize("rank", [16, 64, 8])
@pytest.mark.parametrize(
    ("fqn", "shape"),
    [
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default", "A"),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.default", "B"),
        ("model.layers.1.mlp.down_proj.lora_A.my_adapter", "A"),
        ("transformer.h.0.attn.lora_B", "B"),
        ("model.embed_tokens.lora_embedding_A.default", "A"),
        ("model.embed_tokens.lora_embedding_B.default", "B"),
        ("lora_A.default", "A"),
    ],
)
def test_c17b_filter_rejects_adapter_layers(module_filter: Filter, fqn: str, shape: str, rank: int) -> None:
    """The module filter alone rejects adapter layers, whatever their rank and wherever the component is."""
    module = nn.Linear(64, rank) if shape == "A" else nn.Linear(rank, 64)
    assert bool(module_filter(module, fqn)) is False, f"adapter layer {fqn!r} (rank {rank}) was accepted"


@pytest.mark.parametrize(
    "fqn",
    [
        "base_model.model.model.layers.0.self_attn.q_proj.base_layer",
        "model.layers.0.self_attn.lora_A_proj",
        "model.lora.dense",
        "model.layers.0.mlp.lora_a.fc",
        "my_lora_B.up_proj",
    ],
)
def test_c17b_filter_converts_base_layers_and_look_alikes(module_filter: Filter, fqn: str) -> None:
    """A frozen base layer, and components that only resemble adapter names, are judged by C9 as usual."""
    assert bool(module_filter(nn.Linear(64, 128), fqn)) is True, f"{fqn!r} was rejected"


@PROPERTY
@given(prefix=fqns(), adapter=st.sampled_from(LORA_ADAPTER_COMPONENTS), suffix=fqns(), rank=st.sampled_from([16, 32]))
def test_c17b_property_adapter_component_anywhere_is_rejected(
    module_filter: Filter, prefix: str, adapter: str, suffix: str, rank: int
) -> None:
    """An adapter component at any position (first, middle, last) rejects an otherwise eligible layer."""
    fqn = ".".join(part for part in (prefix, adapter, suffix) if part)
    assert bool(module_filter(nn.Linear(64, rank), fqn)) is False, f"{fqn!r} was accepted"


@pytest.fixture(scope="module")
def peft_model() -> Any:
    """A rank-16 PEFT model, built once: the filter is pure (C9e), so each recipe's filter may judge the same one."""
    reason = package_skip_reason("peft")
    if reason:
        pytest.skip(reason)
    return lora_model(16)


def test_c17b_filter_on_a_real_peft_model(module_filter: Filter, peft_model: Any) -> None:
    """Every module of a rank-16 PEFT model, with its real FQN: adapters rejected, base layers accepted."""
    model = peft_model
    accepted = {fqn for fqn, m in model.named_modules() if isinstance(m, nn.Linear) and module_filter(m, fqn)}
    adapters = sorted(fqn for fqn in accepted if is_lora_adapter_fqn(fqn))
    assert not adapters, f"adapter layers accepted: {adapters[:6]}"
    bases = {fqn for fqn, m in model.named_modules() if fqn.endswith(".base_layer")}
    assert bases and bases <= accepted, f"base layers rejected: {sorted(bases - accepted)}"
