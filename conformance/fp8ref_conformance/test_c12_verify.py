"""C12 ``verify_fp8_status``, on the CPU with torchao: it is loud when FP8 is not in effect (a), quiet when FP8
layers are (b), loud when the FP8 layers emulate float8 (c), and right where trainers call it, before any model is
prepared (d).

C12d: LLaMA-Factory's trainers call verify at the end of ``Trainer.__init__``; the model is prepared later, in
``train()``. With ``acc.fp8_enabled`` false verify warns (or raises) at once, since FP8 cannot come into effect;
with it true verify is quiet, and the layer check is not lost: after the accelerator's next ``prepare`` of a
model it warns if no FP8 layer is in effect (a, c) and stays quiet if FP8 layers are.

"Warns" means a WARNING+ record or a deliberate FP8 error (see :mod:`.kit.verify_outcome`); a check that fires at
the follow-up may do so from inside ``prepare``, so the tests observe ``prepare`` (and ``Trainer.train``) for it.
C12 judges verify alone: where a test needs an FP8 setup that is not the clause's business, the suite builds it.
Only the five contract functions, accelerate, torch, torchao and transformers are used.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from .kit.accelerators import fp8_accelerator, reference_fp8_accelerator, with_emulation
from .kit.contract import make_args
from .kit.env import env_snapshot, fp8_env_prefixes
from .kit.isolation import reset_accelerate_state
from .kit.models import ineligible_model, mixed_model, tiny_llama
from .kit.trainer import FixedBatch
from .kit.trainer import make_args as make_training_args
from .kit.verdicts import apply_patch, block_unless
from .kit.verify_outcome import Outcome, assert_loud, assert_quiet, call_verify, observe

RECIPES = {"rowwise": False, "tensorwise": True}  # value: the all-gather flag that selects the recipe


# --------------------------------------------------------------------------- a, b


def _assert_loud(impl: types.ModuleType, acc: Any, args: Any, situation: str) -> None:
    assert_loud(call_verify(impl, acc, args), situation)


def _plain_prepared() -> Any:
    import accelerate

    acc = accelerate.Accelerator()
    acc.prepare(mixed_model())
    return acc


def test_c12a_warns_when_accelerator_has_fp8_disabled(impl: types.ModuleType) -> None:
    _assert_loud(impl, _plain_prepared(), make_args(fp8=True, backend="torchao"), "acc.fp8_enabled is False")


def test_c12a_warns_when_no_layer_was_converted(impl: types.ModuleType) -> None:
    args = make_args(fp8=True, backend="torchao")
    acc = reference_fp8_accelerator()
    acc.prepare(ineligible_model())
    assert acc.fp8_enabled
    _assert_loud(impl, acc, args, "the prepared model holds no Float8Linear")


_EFFECTIVE: dict[str, Callable[[], nn.Module]] = {"mixed": mixed_model, "llama": tiny_llama}


@pytest.mark.parametrize("model", sorted(_EFFECTIVE))
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c12b_quiet_when_fp8_layers_are_in_effect(impl: types.ModuleType, model: str, recipe: str) -> None:
    args = make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    acc = reference_fp8_accelerator(RECIPES[recipe])  # C12 judges verify alone: the suite builds the FP8 setup
    acc.prepare(_EFFECTIVE[model]())
    assert_quiet(call_verify(impl, acc, args), "FP8 layers are in effect")


# --------------------------------------------------------------------------- c


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c12c_warns_when_fp8_layers_emulate(impl: types.ModuleType, recipe: str) -> None:
    """The implementation's own handler with its config replaced by an emulating one (same filter): FP8
    layers are there and ``fp8_enabled`` is true, but no float8 matmul runs."""
    import accelerate
    from torchao.float8.float8_linear import Float8Linear

    args = make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    acc = accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=with_emulation(impl, args))
    model = acc.unwrap_model(acc.prepare(mixed_model()))
    layers = [m for m in model.modules() if isinstance(m, Float8Linear)]
    block_unless(layers, "C10", "prepare with the implementation's handler (emulating) converted no layer")
    assert acc.fp8_enabled and all(m.config.emulate for m in layers), "the suite's emulated setup"
    assert_loud(call_verify(impl, acc, args), "every FP8 layer in effect emulates float8 (emulate=True)")


def test_c12c_same_model_without_emulation_is_quiet(impl: types.ModuleType) -> None:
    """The control of C12c: the same model and handler with the implementation's own config gives no
    WARNING, so the warning above is about emulation and nothing else."""
    args = make_args(fp8=True, backend="torchao")
    acc = fp8_accelerator(impl, args)
    acc.prepare(mixed_model())
    assert_quiet(call_verify(impl, acc, args), "FP8 layers that do not emulate are in effect")


# --------------------------------------------------------------------------- d, a plain Accelerator


def test_c12d_fp8_disabled_warns_at_once(impl: types.ModuleType) -> None:
    """``Accelerator()`` without FP8, nothing prepared: FP8 cannot come into effect."""
    import accelerate

    acc = accelerate.Accelerator()
    assert not acc.fp8_enabled
    assert_loud(
        call_verify(impl, acc, make_args(fp8=True, backend="torchao")),
        "acc.fp8_enabled is False (before any prepare)",
    )


def test_c12d_fp8_enabled_is_quiet_before_prepare(impl: types.ModuleType) -> None:
    args = make_args(fp8=True, backend="torchao")
    acc = fp8_accelerator(impl, args)
    assert acc.fp8_enabled
    assert_quiet(call_verify(impl, acc, args), "FP8 is enabled and no model is prepared yet (it may come into effect)")


def _verify_then_prepare(impl: types.ModuleType, acc: Any, args: Any, model: nn.Module) -> tuple[Outcome, Outcome]:
    """verify before prepare (must be quiet), then ``acc.prepare(model)``, each observed."""
    before = call_verify(impl, acc, args)
    with observe() as after:
        acc.prepare(model)
    return before, after


_FOLLOW_UPS: dict[str, tuple[Callable[[types.ModuleType, Any], list[Any]] | None, Callable[[], nn.Module], str]] = {
    # case: (handlers, or None for the implementation's; model; why FP8 is not in effect)
    "no-eligible-layer": (None, ineligible_model, "the prepared model holds no FP8 layer"),
    "emulated-layers": (with_emulation, mixed_model, "the FP8 layers of the prepared model emulate float8"),
}


@pytest.mark.parametrize("case", sorted(_FOLLOW_UPS))
def test_c12d_warns_after_the_next_prepare_when_fp8_is_not_in_effect(impl: types.ModuleType, case: str) -> None:
    import accelerate

    handlers, make_model, why = _FOLLOW_UPS[case]
    args = make_args(fp8=True, backend="torchao")
    kwargs_handlers = impl.create_fp8_kwargs(args) if handlers is None else handlers(impl, args)
    acc = accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=kwargs_handlers)
    before, after = _verify_then_prepare(impl, acc, args, make_model())
    assert_quiet(before, "no model was prepared yet (FP8 enabled)")
    assert_loud(
        after,
        f"verify was called before prepare and then {why} (the check after prepare was lost)",
        records=Outcome.fp8_warnings,
    )


def test_c12d_quiet_after_the_next_prepare_when_fp8_layers_are_in_effect(impl: types.ModuleType) -> None:
    args = make_args(fp8=True, backend="torchao")
    acc = fp8_accelerator(impl, args)
    before, after = _verify_then_prepare(impl, acc, args, mixed_model())
    assert_quiet(before, "no model was prepared yet (FP8 enabled)")
    assert_quiet(after, "the prepared model holds FP8 layers that do not emulate", records=Outcome.fp8_warnings)


# --------------------------------------------------------------------------- d, through the HF Trainer

MAX_STEPS = 2


@dataclasses.dataclass
class _TrainerRun:
    at_init: Outcome
    during_train: Outcome
    fp8_layers: int


def _run_trainer(impl: types.ModuleType, output_dir: Path, hidden: int, intermediate: int) -> _TrainerRun:
    """configure, patch, ``Trainer(...)``, verify (where LLaMA-Factory calls it), then ``train()``."""
    from transformers import Trainer

    reset_accelerate_state()
    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        args = make_training_args(
            output_dir, fp8=True, steps=MAX_STEPS, learning_rate=1e-3, logging_strategy="no", lr_scheduler_type="linear"
        )
        impl.configure_fp8_environment(args)
        apply_patch(impl, args.fp8_backend)  # on the torchao path a TE import there is C13d's defect: blocked
        llama = tiny_llama(hidden=hidden, intermediate=intermediate, layers=1)
        trainer = Trainer(model=llama, args=args, train_dataset=FixedBatch(count=8))
        at_init = call_verify(impl, trainer.accelerator, args)
        with observe() as during_train:
            trainer.train()
    from torchao.float8.float8_linear import Float8Linear

    model = trainer.model
    assert model is not None
    fp8_layers = sum(isinstance(m, Float8Linear) for m in model.modules())
    return _TrainerRun(at_init, during_train, fp8_layers)


@pytest.fixture(scope="module")
def eligible_run(impl: types.ModuleType, tmp_path_factory: pytest.TempPathFactory) -> _TrainerRun:
    """Projections 64x64, 64x128, 128x64: all divisible by 16."""
    return _run_trainer(impl, tmp_path_factory.mktemp("c12d_eligible"), hidden=64, intermediate=128)


@pytest.fixture(scope="module")
def odd_run(impl: types.ModuleType, tmp_path_factory: pytest.TempPathFactory) -> _TrainerRun:
    """Projections 40x40, 40x72, 72x40 and a 40x128 lm_head: no size divisible by 16, so no FP8 layer."""
    return _run_trainer(impl, tmp_path_factory.mktemp("c12d_odd"), hidden=40, intermediate=72)


def test_c12d_trainer_quiet_at_init_and_in_train_when_the_model_holds_fp8_layers(eligible_run: _TrainerRun) -> None:
    block_unless(eligible_run.fp8_layers > 0, "C14", "configure, patch and Trainer.train() converted no layer")
    assert_quiet(eligible_run.at_init, "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_quiet(
        eligible_run.during_train,
        "the prepared model holds FP8 layers (FP8 in effect)",
        records=Outcome.fp8_warnings,
    )


def test_c12d_trainer_warns_in_train_when_the_model_holds_no_fp8_layer(odd_run: _TrainerRun) -> None:
    block_unless(odd_run.fp8_layers == 0, "C9b", "Trainer.train() converted layers whose sizes are not divisible by 16")
    assert_quiet(odd_run.at_init, "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_loud(
        odd_run.during_train,
        "verify was called after Trainer.__init__ and train() prepared a model that holds no FP8 layer",
        records=Outcome.fp8_warnings,
    )
