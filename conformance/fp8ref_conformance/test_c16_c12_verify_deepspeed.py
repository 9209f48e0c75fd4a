"""C12a and C12d under DeepSpeed ZeRO: ``verify_fp8_status`` called at the end of ``Trainer.__init__`` (where
LLaMA-Factory calls it), followed up in ``train()``, and called after ``train()``, in the DeepSpeed child's runs that
C16 shares (:mod:`.kit.deepspeed_run`): the torchao FP8 runs of both cases, and for ZeRO-3 a Llama with no layer
divisible by 16, where no FP8 layer can be in effect."""

from __future__ import annotations

from typing import Any

import pytest

from .implementation import Implementation
from .kit.deepspeed_run import CASES, NO_ELIGIBLE_CASE, Pending, assert_ran, case_label, reads
from .kit.trainer import is_torchao_float8, projections
from .kit.verify_outcome import Outcome, assert_loud, assert_quiet, outcome_from_dict


def _own(outcome: Outcome) -> list[Any]:
    return outcome.own_warnings()


def _no_eligible_run(impl: Implementation, deepspeed_run: Pending) -> dict[str, Any]:
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    run: dict[str, Any] = deepspeed_run.runs(NO_ELIGIBLE_CASE)["no_eligible"]
    where = f"{case_label(NO_ELIGIBLE_CASE)}, a Llama with no layer divisible by 16"
    assert_ran(run, where)
    converted = {fqn: cls for fqn, cls in run["classes"].items() if is_torchao_float8(cls)}
    assert not converted, f"precondition: {where}: layers not divisible by 16 were converted: {converted}"
    assert run["fp8_enabled"], f"precondition: {where}: the Trainer's Accelerator is not in FP8 (see C16a)"
    return run


@reads("no_eligible")
def test_c12a_deepspeed_trainer_without_fp8_layer_warns_after_train(
    impl: Implementation, deepspeed_run: Pending
) -> None:
    run = _no_eligible_run(impl, deepspeed_run)
    assert_loud(
        outcome_from_dict(run["verify"]["after"]),
        "verify was called after train() under DeepSpeed and the prepared model holds no FP8 layer",
    )


@reads("no_eligible")
def test_c12d_deepspeed_trainer_without_fp8_layer_warns_in_train(impl: Implementation, deepspeed_run: Pending) -> None:
    run = _no_eligible_run(impl, deepspeed_run)
    assert_quiet(outcome_from_dict(run["verify"]["init"]), "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_loud(
        outcome_from_dict(run["verify"]["train"]),
        "verify was called after Trainer.__init__ under DeepSpeed and train() prepared a model that holds no FP8 layer",
        records=_own,
    )


@reads("fp8")
@pytest.mark.parametrize("case", CASES)
def test_c12d_deepspeed_trainer_quiet_at_init_and_in_train_with_fp8_layers(
    impl: Implementation, deepspeed_run: Pending, case: str
) -> None:
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    run = deepspeed_run.runs(case)["fp8"]
    assert_ran(run, case_label(case))
    assert any(is_torchao_float8(cls) for cls in projections(run["classes"]).values()), "precondition: see C16a"
    assert_quiet(outcome_from_dict(run["verify"]["init"]), "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_quiet(
        outcome_from_dict(run["verify"]["train"]), "train() prepared a model that holds FP8 layers", records=_own
    )
