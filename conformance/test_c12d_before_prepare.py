"""C12d: ``verify_fp8_status`` called before any model is prepared, which is where trainers call it
(LLaMA-Factory's trainers call it at the end of ``Trainer.__init__``; the model is prepared later, in
``train()``).

- ``acc.fp8_enabled`` false: it warns (or raises) at once, since FP8 cannot come into effect.
- ``acc.fp8_enabled`` true: it is quiet, and the layer check is not lost: after the accelerator's next
  ``prepare`` of a model it warns if no FP8 layer is in effect (C12a, C12c) and stays quiet if FP8 layers are.

"Warns" means a WARNING+ record or a deliberate FP8 error (see ``verify_outcome``); a check that fires at the
follow-up may do so from inside ``prepare``, so the tests observe ``prepare`` (and ``Trainer.train``) for it.
Only the five contract functions, accelerate, torch, torchao and transformers are used.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from .helpers import env_snapshot, fp8_env_prefixes, make_args
from .scenarios import fp8_accelerator, ineligible_model, mixed_model, with_emulation
from .verify_outcome import Outcome, assert_loud, assert_quiet, call_verify, observe

# --------------------------------------------------------------------------- a plain Accelerator


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


# --------------------------------------------------------------------------- through the HF Trainer

VOCAB = 128
SEQ_LEN = 16
MAX_STEPS = 2


def _training_arguments(output_dir: Path) -> Any:
    from transformers import TrainingArguments

    @dataclasses.dataclass
    class FP8TrainingArguments(TrainingArguments):
        fp8: bool = False
        fp8_backend: str = "auto"
        fp8_enable_fsdp_float8_all_gather: bool = False

    return FP8TrainingArguments(
        output_dir=str(output_dir),
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        fp8=True,
        fp8_backend="torchao",
        fp8_enable_fsdp_float8_all_gather=False,
    )


class _Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, count: int = 8) -> None:
        self.ids = torch.randint(0, VOCAB, (count, SEQ_LEN), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index].clone()}


def _tiny_llama(hidden: int, intermediate: int) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=SEQ_LEN,
        tie_word_embeddings=False,
    )
    model: nn.Module = LlamaForCausalLM(config)
    return model


@dataclasses.dataclass
class _TrainerRun:
    at_init: Outcome
    during_train: Outcome
    fp8_layers: int


def _run_trainer(impl: types.ModuleType, output_dir: Path, hidden: int, intermediate: int) -> _TrainerRun:
    """configure, patch, ``Trainer(...)``, verify (where LLaMA-Factory calls it), then ``train()``."""
    import accelerate.state
    from transformers import Trainer

    accelerate.state.AcceleratorState._reset_state(True)
    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        args = _training_arguments(output_dir)
        impl.configure_fp8_environment(args)
        impl.patch_accelerator_for_fp8()
        trainer = Trainer(model=_tiny_llama(hidden, intermediate), args=args, train_dataset=_Tokens())
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
    assert eligible_run.fp8_layers > 0, "precondition: train() converted no layer (see C14)"
    assert_quiet(eligible_run.at_init, "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_quiet(
        eligible_run.during_train,
        "the prepared model holds FP8 layers (FP8 in effect)",
        records=Outcome.fp8_warnings,
    )


def test_c12d_trainer_warns_in_train_when_the_model_holds_no_fp8_layer(odd_run: _TrainerRun) -> None:
    assert odd_run.fp8_layers == 0, "precondition: a layer with sizes not divisible by 16 was converted"
    assert_quiet(odd_run.at_init, "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_loud(
        odd_run.during_train,
        "verify was called after Trainer.__init__ and train() prepared a model that holds no FP8 layer",
        records=Outcome.fp8_warnings,
    )
