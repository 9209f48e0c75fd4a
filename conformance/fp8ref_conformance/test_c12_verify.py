"""C12 ``verify_fp8_status``, on the CPU with torchao: it is loud when FP8 is not in effect (a), quiet when FP8
layers are (b), loud when the FP8 layers emulate float8 (c), right where trainers call it, before any model is
prepared (d), and says when torchao's float8 layers run eagerly, where they do not pay (e).

C12d: LLaMA-Factory's trainers call verify at the end of ``Trainer.__init__``; the model is prepared later, in
``train()``. With ``acc.fp8_enabled`` false verify warns (or raises) at once, since FP8 cannot come into effect;
with it true verify is quiet, and the layer check is not lost: after the accelerator's next ``prepare`` of a
model it warns if no FP8 layer is in effect (a, c) and stays quiet if FP8 layers are.

"Warns" means a WARNING+ record or a deliberate FP8 error (see :mod:`.kit.verify_outcome`); a check that fires at
the follow-up may do so from inside ``prepare``, so the tests observe ``prepare`` (and ``Trainer.train``) for it,
and count there only the implementation's own records, whatever they say (another library's warning never decides).

C12e: with torchao float8 layers in effect and none of them inside a compiled module, verify logs one WARNING that
names ``torch.compile``, and never raises for it; a ``torch.compile`` wrapper of the prepared model or of an
enclosing module, a module compiled in place (``nn.Module.compile()``), and an accelerator whose dynamo plugin
compiles at ``prepare`` (the HF Trainer's ``torch_compile=True``) each make the layers compiled; Transformer Engine
layers never get the notice. No compiled model is ever called here: a wrapper compiles nothing until it runs.
C12 judges verify alone: where a test needs an FP8 setup that is not the clause's business, the suite builds it.
FP8 layers are torchao ``Float8Linear`` and Transformer Engine modules: the TE cases use the suite's stand-in TE
(high-precision ``te.Linear``, converted by accelerate's own TE conversion), which tells verify's layer check
apart from one that counts only torchao layers. Only the five contract functions, accelerate, torch, torchao and
transformers are used.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from .implementation import Implementation
from .kit.accelerators import (
    float8_names,
    fp8_accelerator,
    reference_fp8_accelerator,
    reference_te_accelerator,
    te_layer_names,
    with_emulation,
)
from .kit.compiled_forms import COMPILED_FORMS
from .kit.contract import contract_accepts, fp8_arguments
from .kit.isolation import reset_accelerate_state
from .kit.models import MIXED_MODEL_ELIGIBLE, ineligible_model, mixed_model, mlp_model, tiny_llama
from .kit.standin_te import standin_te
from .kit.trainer import training_arguments
from .kit.trainer_verify import VerifyInTrainer, verify_in_trainer
from .kit.verdicts import block_unless
from .kit.verify_outcome import (
    Outcome,
    assert_loud,
    assert_no_compile_notice,
    assert_one_compile_notice,
    assert_quiet,
    call_verify,
    observe,
)

RECIPES = {"rowwise": False, "tensorwise": True}  # value: the all-gather flag that selects the recipe


# --------------------------------------------------------------------------- a, b


def _assert_loud(impl: Implementation, acc: Any, args: Any, situation: str) -> None:
    assert_loud(call_verify(impl, acc, args), situation)


def _plain_prepared() -> Any:
    import accelerate

    acc = accelerate.Accelerator()
    acc.prepare(mixed_model())
    return acc


def test_c12a_warns_when_accelerator_has_fp8_disabled(impl: Implementation) -> None:
    _assert_loud(impl, _plain_prepared(), fp8_arguments(fp8=True, backend="torchao"), "acc.fp8_enabled is False")


def test_c12a_warns_when_no_layer_was_converted(impl: Implementation) -> None:
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = reference_fp8_accelerator()
    acc.prepare(ineligible_model())
    assert acc.fp8_enabled
    _assert_loud(impl, acc, args, "the prepared model holds no Float8Linear")


_EFFECTIVE: dict[str, Callable[[], nn.Module]] = {"mixed": mixed_model, "llama": tiny_llama}


@pytest.mark.parametrize("model", sorted(_EFFECTIVE))
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c12b_quiet_when_fp8_layers_are_in_effect(impl: Implementation, model: str, recipe: str) -> None:
    """Judged on a compiled model (a lazy ``torch.compile`` wrapper, prepared: nothing is compiled until it runs, and
    it never runs here), so that not even the C12e notice is due: nothing at all may be logged at WARNING+."""
    import torch

    args = fp8_arguments(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    acc = reference_fp8_accelerator(RECIPES[recipe])  # C12 judges verify alone: the suite builds the FP8 setup
    acc.prepare(torch.compile(_EFFECTIVE[model]()))
    assert_quiet(call_verify(impl, acc, args), "FP8 layers are in effect", compiled=True)


# --------------------------------------------------------------------------- a, b with Transformer Engine layers


def _prepare_te(acc: Any, model: nn.Module) -> set[str]:
    """``acc.prepare(model, optimizer)`` (accelerate converts to TE only with both); the TE modules it left."""
    prepared, _ = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    return te_layer_names(acc.unwrap_model(prepared))


_TE_EFFECTIVE: dict[str, Callable[[], nn.Module]] = {"mlp": lambda: mlp_model(dtype=torch.float32), "llama": tiny_llama}


@pytest.mark.parametrize("model", sorted(_TE_EFFECTIVE))
def test_c12b_quiet_when_te_layers_are_in_effect(impl: Implementation, standin_te_dir: Path, model: str) -> None:
    """Transformer Engine layers are FP8 layers: a verify that counts only torchao ``Float8Linear`` warns here."""
    args = fp8_arguments(fp8=True, backend="te")
    with standin_te(standin_te_dir):
        acc = reference_te_accelerator()
        assert _prepare_te(acc, _TE_EFFECTIVE[model]()), "precondition: accelerate converted no layer to TE"
        assert_quiet(call_verify(impl, acc, args), "Transformer Engine layers are in effect")


def test_c12a_warns_when_no_te_layer_is_in_effect(impl: Implementation, standin_te_dir: Path) -> None:
    """FP8 enabled with the TE backend, and the prepared model holds no TE module: the backend alone is not FP8."""
    args = fp8_arguments(fp8=True, backend="te")
    with standin_te(standin_te_dir):
        acc = reference_te_accelerator()
        left = _prepare_te(acc, ineligible_model())
        assert acc.fp8_enabled and not left, f"precondition: FP8 enabled and no TE module ({sorted(left)})"
        _assert_loud(impl, acc, args, "the prepared model holds no FP8 layer (Transformer Engine backend)")


# --------------------------------------------------------------------------- c


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c12c_warns_when_fp8_layers_emulate(impl: Implementation, recipe: str) -> None:
    """The implementation's own handler with its config replaced by an emulating one (same filter): FP8
    layers are there and ``fp8_enabled`` is true, but no float8 matmul runs."""
    import accelerate
    from torchao.float8.float8_linear import Float8Linear

    args = fp8_arguments(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    acc = accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=with_emulation(impl, args))
    model = acc.unwrap_model(acc.prepare(mixed_model()))
    layers = [m for m in model.modules() if isinstance(m, Float8Linear)]
    block_unless(layers, "C10", "prepare with the implementation's handler (emulating) converted no layer")
    assert acc.fp8_enabled and all(m.config.emulate for m in layers), "the suite's emulated setup"
    assert_loud(call_verify(impl, acc, args), "every FP8 layer in effect emulates float8 (emulate=True)")


def _user_converted(emulate: bool, only: str | None = None) -> nn.Module:
    """:func:`.mixed_model` with its eligible layers (or only the one named ``only``) converted by the user with
    torchao's ``convert_to_float8_training`` before any ``prepare``; ``emulate`` selects the config."""
    from torchao.float8 import Float8LinearConfig, convert_to_float8_training

    config = dataclasses.replace(Float8LinearConfig.from_recipe_name("rowwise"), emulate=emulate)
    model = mixed_model()

    def chosen(module: nn.Module, fqn: str) -> bool:
        return contract_accepts(module, fqn) and (only is None or fqn == only)

    convert_to_float8_training(model, config=config, module_filter_fn=chosen)  # in place
    return model


def _emulation_of(model: nn.Module) -> dict[str, bool]:
    from torchao.float8.float8_linear import Float8Linear

    return {name: bool(m.config.emulate) for name, m in model.named_modules() if isinstance(m, Float8Linear)}


@pytest.mark.parametrize("emulating", ["user-converted", "handler-converted"])
def test_c12c_warns_when_only_some_fp8_layers_emulate(impl: Implementation, emulating: str) -> None:
    """One layer converted by the user before ``prepare``, the others by the accelerator's handler; one of the two
    configs emulates. The emulating layers run no float8 matmul: FP8 is not really in effect for them, whether
    they are a few or all, and whoever converted them."""
    args = fp8_arguments(fp8=True, backend="torchao")
    user_emulates = emulating == "user-converted"
    acc = reference_fp8_accelerator(emulate=not user_emulates, keep_float8=True)
    model = acc.unwrap_model(acc.prepare(_user_converted(user_emulates, only="fc_in")))
    emulation = _emulation_of(model)
    assert set(emulation) == MIXED_MODEL_ELIGIBLE, f"precondition: the eligible layers are FP8 layers ({emulation})"
    assert sorted(set(emulation.values())) == [False, True], f"precondition: some layers emulate ({emulation})"
    assert_loud(call_verify(impl, acc, args), f"FP8 layers in effect emulate float8 ({emulation})")


def test_c12c_warns_when_the_user_converted_the_emulating_layers(impl: Implementation) -> None:
    """Every FP8 layer emulates, converted by the user with torchao before ``prepare``; the accelerator's own
    handler does not emulate (and leaves those layers alone): verify judges the layers in effect, not the handler."""
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = reference_fp8_accelerator(keep_float8=True)
    model = acc.unwrap_model(acc.prepare(_user_converted(emulate=True)))
    emulation = _emulation_of(model)
    assert emulation and all(emulation.values()), f"precondition: the user's emulating layers ({emulation})"
    assert not acc.ao_recipe_handler.config.emulate
    assert_loud(call_verify(impl, acc, args), "every FP8 layer in effect emulates float8 (converted by the user)")


def test_c12c_same_model_without_emulation_is_quiet(impl: Implementation) -> None:
    """The control of C12c: the same model and handler with the implementation's own config gives no
    WARNING, so the warning above is about emulation and nothing else."""
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = fp8_accelerator(impl, args)
    acc.prepare(mixed_model())
    assert_quiet(call_verify(impl, acc, args), "FP8 layers that do not emulate are in effect")


# --------------------------------------------------------------------------- d, a plain Accelerator


def test_c12d_fp8_disabled_warns_at_once(impl: Implementation) -> None:
    """``Accelerator()`` without FP8, nothing prepared: FP8 cannot come into effect."""
    import accelerate

    acc = accelerate.Accelerator()
    assert not acc.fp8_enabled
    assert_loud(
        call_verify(impl, acc, fp8_arguments(fp8=True, backend="torchao")),
        "acc.fp8_enabled is False (before any prepare)",
    )


def test_c12d_fp8_enabled_is_quiet_before_prepare(impl: Implementation) -> None:
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = fp8_accelerator(impl, args)
    assert acc.fp8_enabled
    assert_quiet(call_verify(impl, acc, args), "FP8 is enabled and no model is prepared yet (it may come into effect)")


def _verify_then_prepare(impl: Implementation, acc: Any, args: Any, model: nn.Module) -> tuple[Outcome, Outcome]:
    """verify before prepare (must be quiet), then ``acc.prepare(model)``, each observed."""
    before = call_verify(impl, acc, args)
    with observe() as after:
        acc.prepare(model)
    return before, after


_FOLLOW_UPS: dict[str, tuple[Callable[[Implementation, Any], list[Any]] | None, Callable[[], nn.Module], str]] = {
    # case: (handlers, or None for the implementation's; model; why FP8 is not in effect)
    "no-eligible-layer": (None, ineligible_model, "the prepared model holds no FP8 layer"),
    "emulated-layers": (with_emulation, mixed_model, "the FP8 layers of the prepared model emulate float8"),
}


@pytest.mark.parametrize("case", sorted(_FOLLOW_UPS))
def test_c12d_warns_after_the_next_prepare_when_fp8_is_not_in_effect(impl: Implementation, case: str) -> None:
    import accelerate

    handlers, make_model, why = _FOLLOW_UPS[case]
    args = fp8_arguments(fp8=True, backend="torchao")
    kwargs_handlers = impl.create_fp8_kwargs(args) if handlers is None else handlers(impl, args)
    acc = accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=kwargs_handlers)
    before, after = _verify_then_prepare(impl, acc, args, make_model())
    assert_quiet(before, "no model was prepared yet (FP8 enabled)")
    assert_loud(
        after,
        f"verify was called before prepare and then {why} (the check after prepare was lost)",
        records=Outcome.own_warnings,
    )


def test_c12d_quiet_after_the_next_prepare_when_fp8_layers_are_in_effect(impl: Implementation) -> None:
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = fp8_accelerator(impl, args)
    before, after = _verify_then_prepare(impl, acc, args, mixed_model())
    assert_quiet(before, "no model was prepared yet (FP8 enabled)")
    assert_quiet(after, "the prepared model holds FP8 layers that do not emulate", records=Outcome.own_warnings)


_IN_EFFECT: dict[str, tuple[Callable[[], nn.Module], bool]] = {
    # case: (model, whether FP8 layers are in effect after a prepare with the reference accelerator)
    "no-eligible-layer": (ineligible_model, False),
    "fp8-layers": (mixed_model, True),
}


def _judge_follow_up(outcome: Outcome, in_effect: bool, situation: str) -> None:
    if in_effect:
        assert_quiet(outcome, f"{situation}, and the prepared model holds FP8 layers", records=Outcome.own_warnings)
    else:
        assert_loud(outcome, f"{situation}, and the prepared model holds no FP8 layer", records=Outcome.own_warnings)


@pytest.mark.parametrize("case", sorted(_IN_EFFECT))
def test_c12d_te_layers_are_checked_after_the_next_prepare(
    impl: Implementation, standin_te_dir: Path, case: str
) -> None:
    """The deferred check with the Transformer Engine backend: quiet when accelerate's TE conversion left TE layers
    (``mixed_model``'s first layer: accelerate stops at the odd-sized second), loud when it left none."""
    make_model, in_effect = _IN_EFFECT[case]
    args = fp8_arguments(fp8=True, backend="te")
    with standin_te(standin_te_dir):
        acc = reference_te_accelerator()
        assert_quiet(call_verify(impl, acc, args), "no model was prepared yet (FP8 enabled, TE backend)")
        with observe() as after:
            left = _prepare_te(acc, make_model())
        assert bool(left) is in_effect, f"precondition: TE modules after prepare: {sorted(left)}"
        _judge_follow_up(after, in_effect, "verify was called before prepare (TE backend)")


@pytest.mark.parametrize("case", sorted(_IN_EFFECT))
def test_c12d_second_verify_before_prepare_keeps_the_check(impl: Implementation, case: str) -> None:
    """Trainers may call verify more than once before ``train()`` (a subclass and its parent, a retry): each call
    is quiet, and one check still follows the next ``prepare``."""
    make_model, in_effect = _IN_EFFECT[case]
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = reference_fp8_accelerator()
    assert_quiet(call_verify(impl, acc, args), "no model was prepared yet (first verify)")
    assert_quiet(call_verify(impl, acc, args), "no model was prepared yet (second verify)")
    with observe() as after:
        prepared = acc.prepare(make_model())
    assert bool(float8_names(acc.unwrap_model(prepared))) is in_effect, "precondition: FP8 layers, or none"
    _judge_follow_up(after, in_effect, "verify was called twice before prepare")


@pytest.mark.parametrize("case", sorted(_IN_EFFECT))
def test_c12d_check_stays_with_its_accelerator_when_another_has_fp8_off(impl: Implementation, case: str) -> None:
    """Two accelerators in one process: verify on the FP8 one before ``prepare`` (quiet), then on one without FP8
    (loud at once), which is prepared too. The FP8 accelerator's check is neither lost nor spent on the other."""
    import accelerate

    make_model, in_effect = _IN_EFFECT[case]
    args = fp8_arguments(fp8=True, backend="torchao")
    fp8_acc = reference_fp8_accelerator()
    assert_quiet(call_verify(impl, fp8_acc, args), "no model was prepared yet (FP8 enabled)")
    reset_accelerate_state()  # accelerate holds one mixed precision per process state; fp8_acc keeps its own
    plain = accelerate.Accelerator()
    assert not plain.fp8_enabled and fp8_acc.fp8_enabled
    assert_loud(call_verify(impl, plain, args), "the other accelerator has fp8_enabled False")
    plain.prepare(mixed_model())  # not judged: verify has warned for it already
    with observe() as after:
        fp8_acc.prepare(make_model())
    _judge_follow_up(after, in_effect, "verify was called on this accelerator before prepare")


@pytest.mark.parametrize("next_fp8", [False, True], ids=["next-without-fp8", "next-with-fp8-layers"])
def test_c12d_pending_check_does_not_follow_into_another_accelerator(impl: Implementation, next_fp8: bool) -> None:
    """A verify before ``prepare`` whose accelerator is never prepared (a test, or a run, that ends there) leaves
    its check with that accelerator: the next accelerator, never given to verify, prepares a model without the
    implementation warning, with FP8 off or with FP8 layers in effect."""
    import accelerate

    args = fp8_arguments(fp8=True, backend="torchao")
    left_pending = reference_fp8_accelerator()
    assert_quiet(call_verify(impl, left_pending, args), "no model was prepared yet (FP8 enabled)")
    reset_accelerate_state()  # what the suite's isolation does between two tests
    following = reference_fp8_accelerator() if next_fp8 else accelerate.Accelerator()
    with observe() as during:
        following.prepare(mixed_model())
    assert_quiet(during, "an accelerator that verify was never given prepared a model", records=Outcome.own_warnings)
    assert left_pending.fp8_enabled  # kept alive to the end: its pending check may still be held


# --------------------------------------------------------------------------- d, through the HF Trainer

MAX_STEPS = 2


def _verify_in_trainer(impl: Implementation, output_dir: Path, hidden: int, intermediate: int) -> VerifyInTrainer:
    def arguments() -> Any:
        return training_arguments(
            output_dir, fp8=True, steps=MAX_STEPS, learning_rate=1e-3, logging_strategy="no", lr_scheduler_type="linear"
        )

    return verify_in_trainer(impl, arguments, hidden=hidden, intermediate=intermediate)


@pytest.fixture(scope="module")
def eligible_run(impl: Implementation, tmp_path_factory: pytest.TempPathFactory) -> VerifyInTrainer:
    """Projections 64x64, 64x128, 128x64: all divisible by 16."""
    return _verify_in_trainer(impl, tmp_path_factory.mktemp("c12d_eligible"), hidden=64, intermediate=128)


@pytest.fixture(scope="module")
def odd_run(impl: Implementation, tmp_path_factory: pytest.TempPathFactory) -> VerifyInTrainer:
    """Projections 40x40, 40x72, 72x40 and a 40x128 lm_head: no size divisible by 16, so no FP8 layer."""
    return _verify_in_trainer(impl, tmp_path_factory.mktemp("c12d_odd"), hidden=40, intermediate=72)


def test_c12d_trainer_quiet_at_init_and_in_train_when_the_model_holds_fp8_layers(eligible_run: VerifyInTrainer) -> None:
    block_unless(eligible_run.fp8_layers() > 0, "C14", "configure, patch and Trainer.train() converted no layer")
    assert_quiet(eligible_run.at_init, "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_quiet(
        eligible_run.during_train,
        "the prepared model holds FP8 layers (FP8 in effect)",
        records=Outcome.own_warnings,
    )


def test_c12d_trainer_warns_in_train_when_the_model_holds_no_fp8_layer(odd_run: VerifyInTrainer) -> None:
    block_unless(
        odd_run.fp8_layers() == 0, "C9b", "Trainer.train() converted layers whose sizes are not divisible by 16"
    )
    assert_quiet(odd_run.at_init, "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_loud(
        odd_run.during_train,
        "verify was called after Trainer.__init__ and train() prepared a model that holds no FP8 layer",
        records=Outcome.own_warnings,
    )


# --------------------------------------------------------------------------- e, does it pay: torch.compile


def test_c12e_eager_float8_layers_get_one_compile_notice(impl: Implementation) -> None:
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = reference_fp8_accelerator()
    acc.prepare(mixed_model())
    assert_one_compile_notice(
        call_verify(impl, acc, args), "torchao float8 layers are in effect and none runs compiled"
    )


@pytest.mark.parametrize("form", list(COMPILED_FORMS))
def test_c12e_compiled_float8_layers_get_no_notice(impl: Implementation, form: str) -> None:
    accelerator_kwargs, make_model = COMPILED_FORMS[form]
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = reference_fp8_accelerator(**accelerator_kwargs())
    acc.prepare(make_model())
    outcome = call_verify(impl, acc, args)
    assert_no_compile_notice(outcome, f"the float8 layers run compiled ({form})")
    assert_quiet(outcome, f"FP8 layers are in effect and run compiled ({form})", compiled=True)


_DEFERRED: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[], nn.Module]]] = {
    "eager": (dict, mixed_model),
    "wrapper-of-the-model": COMPILED_FORMS["wrapper-of-the-model"],
    "dynamo-plugin": COMPILED_FORMS["dynamo-plugin"],
}


@pytest.mark.parametrize("form", list(_DEFERRED))
def test_c12e_deferred_check_judges_compilation_after_the_next_prepare(impl: Implementation, form: str) -> None:
    """verify before prepare (C12d), then ``prepare``: the notice comes with the follow-up if and only if the
    float8 layers run eagerly, and never before prepare, when the model may still be compiled."""
    accelerator_kwargs, make_model = _DEFERRED[form]
    args = fp8_arguments(fp8=True, backend="torchao")
    acc = reference_fp8_accelerator(**accelerator_kwargs())
    before, after = _verify_then_prepare(impl, acc, args, make_model())
    assert_no_compile_notice(before, "no model was prepared yet (it may still be compiled)")
    if form == "eager":
        assert after.error is None, f"prepare raised after verify: {after.explain_error()}"
        assert len(after.compile_notices()) == 1, (
            "verify was called before prepare and prepare then left torchao float8 layers that run eagerly, but "
            f"the follow-up did not log one WARNING naming torch.compile (C12e); WARNING+ records: {after.described}"
        )
    else:
        assert_no_compile_notice(after, f"prepare compiled the float8 layers ({form})")
        assert_quiet(after, f"FP8 layers are in effect and run compiled ({form})", records=Outcome.fp8_warnings)


def test_c12e_trainer_compiling_at_prepare_gets_no_notice(impl: Implementation, tmp_path: Path) -> None:
    """The HF Trainer with ``torch_compile=True``: its accelerator compiles the model at ``prepare``."""
    from accelerate.utils.other import is_compiled_module
    from torchao.float8.float8_linear import Float8Linear

    def arguments() -> Any:
        return training_arguments(tmp_path, fp8=True, steps=MAX_STEPS, logging_strategy="no", torch_compile=True)

    run = verify_in_trainer(impl, arguments, stop_before_the_first_step=True)
    at_init, in_train, trainer = run.at_init, run.during_train, run.trainer
    assert any(isinstance(m, Float8Linear) for m in trainer.model.modules()), "precondition: no layer converted (C14)"
    assert is_compiled_module(trainer.model_wrapped), "precondition: the Trainer's prepare did not compile the model"
    assert_no_compile_notice(at_init, "the Trainer's accelerator compiles the model at prepare (torch_compile=True)")
    assert_no_compile_notice(in_train, "the Trainer's prepare compiled the model (torch_compile=True)")
    assert_quiet(in_train, "FP8 layers are in effect and run compiled", records=Outcome.fp8_warnings)


def test_c12e_trainer_running_eagerly_gets_the_notice_after_train(eligible_run: VerifyInTrainer) -> None:
    """The HF Trainer without ``torch_compile`` (LLaMA-Factory's default): the follow-up of C12d brings it."""
    assert eligible_run.fp8_layers() > 0, "precondition: train() converted no layer (see C14)"
    assert_no_compile_notice(eligible_run.at_init, "no model was prepared yet at the end of Trainer.__init__")
    assert len(eligible_run.during_train.compile_notices()) == 1, (
        "verify was called after Trainer.__init__ and train() then ran torchao float8 layers eagerly, but no "
        f"WARNING naming torch.compile was logged (C12e); WARNING+ records: {eligible_run.during_train.described}"
    )


def test_c12e_te_layers_never_get_the_notice(impl: Implementation, standin_te_dir: Path) -> None:
    """Transformer Engine brings fused kernels of its own: eager TE layers (the stand-in's) get no notice."""
    import accelerate
    import torch
    from accelerate.utils import TERecipeKwargs

    with standin_te(standin_te_dir):
        import transformer_engine.pytorch as te

        handler = TERecipeKwargs(fp8_format="HYBRID", amax_history_len=16, amax_compute_algo="max")
        acc = accelerate.Accelerator(mixed_precision="fp8", kwargs_handlers=[handler])
        model = nn.Sequential(OrderedDict(fc1=nn.Linear(64, 128), act=nn.GELU(), fc2=nn.Linear(128, 64)))
        prepared, _ = acc.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
        assert any(isinstance(m, te.Linear) for m in acc.unwrap_model(prepared).modules()), "precondition: no TE layer"
        outcome = call_verify(impl, acc, fp8_arguments(fp8=True, backend="te"))
    assert_no_compile_notice(outcome, "the FP8 layers are Transformer Engine layers (eager)")
