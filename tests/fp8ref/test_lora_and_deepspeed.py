"""fp8ref's LoRA rule (filter, explain, report, plan) and its refusal of the FSDP float8 all-gather under
DeepSpeed (configure, patched Accelerator); the end-to-end checks are clauses C16 and C17 of the suite."""

from __future__ import annotations

import os
import types

import pytest
import torch.nn as nn

from fp8ref import (
    FP8ConfigError,
    SkipReason,
    configure_fp8_environment,
    explain,
    module_filter,
    patch_accelerator_for_fp8,
    unpatch_accelerator_for_fp8,
)
from fp8ref.plan import plan_config
from fp8ref.verify import FP8Report


@pytest.mark.parametrize(
    "fqn",
    ["m.layers.0.q_proj.lora_A.default", "m.layers.0.q_proj.lora_B.default", "emb.lora_embedding_A.x", "lora_B"],
)
@pytest.mark.parametrize("rank", [8, 16, 64])
def test_adapters_are_kept_with_their_own_reason(fqn: str, rank: int) -> None:
    decision = explain(nn.Linear(64, rank), fqn)
    assert decision.convert is False and decision.reason is SkipReason.LORA_ADAPTER
    assert str(decision.reason.value) == "LoRA adapter layer: kept in high precision"
    assert module_filter(nn.Linear(64, rank), fqn) is False


def test_base_layers_and_look_alikes_are_converted() -> None:
    for fqn in ("m.q_proj.base_layer", "m.lora_A_proj", "lora.dense", "m.lora_a"):
        assert module_filter(nn.Linear(64, 64), fqn) is True, fqn


def test_report_lists_adapters_under_their_own_heading() -> None:
    report = FP8Report(
        requested=True,
        in_effect=True,
        converted=("q_proj.base_layer",),
        skipped=(("lm_head", "head or embedding layer"),),
        lora_adapters=("q_proj.lora_A.default", "q_proj.lora_B.default"),
    )
    text = report.summary()
    assert "skipped linear layers: 1" in text
    assert "LoRA adapter layers kept in high precision: 2" in text and "q_proj.lora_B.default" in text
    assert report.to_dict()["lora_adapters"] == ["q_proj.lora_A.default", "q_proj.lora_B.default"]


def test_plan_lora_rank_16_on_the_embedded_llama() -> None:
    plain = plan_config(None)
    lora = plan_config(None, lora_rank=16)
    assert len(lora.layers) == len(plain.layers) + 2 * len(plain.converted)
    assert len(lora.converted) == len(plain.converted)
    assert all(layer.fqn.endswith(".base_layer") for layer in lora.converted)
    assert len(lora.lora_adapters) == 2 * len(plain.converted) and not any(a.convert for a in lora.lora_adapters)
    assert lora.fp8_flop_share < plain.fp8_flop_share  # the adapters' GEMMs count, in high precision
    totals = lora.to_dict()["totals"]
    assert totals["lora_adapters"] == len(lora.lora_adapters) and totals["lora_adapters_converted"] == 0


def test_plan_lora_targets_and_errors() -> None:
    lora = plan_config(None, lora_rank=8, lora_targets=["q_proj", "v_proj"])
    assert {a.fqn.split(".")[-3] for a in lora.lora_adapters} == {"q_proj", "v_proj"}
    with pytest.raises(FP8ConfigError, match="name no linear layer"):
        plan_config(None, lora_rank=8, lora_targets=["nope"])
    with pytest.raises(FP8ConfigError, match="--lora-rank"):
        plan_config(None, lora_targets=["q_proj"])


def _args(**extra: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(fp8=True, fp8_backend="torchao", fp8_enable_fsdp_float8_all_gather=True, **extra)


def test_configure_refuses_all_gather_with_a_deepspeed_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    with pytest.raises(FP8ConfigError) as error:
        configure_fp8_environment(_args(deepspeed={"zero_optimization": {"stage": 3}}))
    message = str(error.value)
    assert "fp8_enable_fsdp_float8_all_gather" in message and "DeepSpeed" in message and "Fix:" in message
    assert "ACCELERATE_MIXED_PRECISION" not in os.environ  # nothing written before the error


def test_patched_accelerator_refuses_all_gather_under_deepspeed(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate import Accelerator

    for name in ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_FP8_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    patch_accelerator_for_fp8(_args())
    try:
        with pytest.raises(FP8ConfigError, match="DeepSpeed"):
            Accelerator()
    finally:
        unpatch_accelerator_for_fp8()


def test_check_passes_the_arguments_after_the_separator_to_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fp8ref check --impl M -- -k "c16 or c17"``: pytest gets ``-k "c16 or c17"``, not ``--`` first (which
    made it read ``-k`` as a path: "module or package not found: -k")."""
    import fp8ref_conformance.runner as runner
    from fp8ref.cli import main

    seen: dict[str, object] = {}

    def fake_run_check(impls: list[str], **kwargs: object) -> int:
        seen.update(kwargs, impls=impls)
        return 0

    monkeypatch.setattr(runner, "run_check", fake_run_check)
    assert main(["check", "--impl", "some.module", "--", "-k", "c16 or c17"]) == 0
    assert seen["impls"] == ["some.module"] and seen["extra_args"] == ["-k", "c16 or c17"]
