"""configure_fp8_environment alone is enough, in LLaMA-Factory's call order, and never breaks an Accelerator that is
not in FP8 (clauses C8g and C14b; the suite's tests of them are in conformance/). Here: what fp8ref changes in
accelerate for that, that it is idempotent, inert when FP8 is off or the request invalid, and undone by
``unpatch_accelerator_for_fp8``."""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path
from typing import Any

import accelerate.accelerator as accelerator_module
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import AORecipeKwargs, DistributedDataParallelKwargs
from torch import nn

from fp8ref import (
    FP8ConfigError,
    ModuleFilter,
    configure_fp8_environment,
    fp8_environment,
    is_accelerator_patched,
    patch_accelerator_for_fp8,
    unpatch_accelerator_for_fp8,
    verify_fp8_status,
)
from fp8ref.patch import CLASS_ATTRIBUTES

from .conftest import make_args


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))


def _float8_count(model: nn.Module) -> int:
    return sum(type(m).__name__ == "Float8Linear" for m in model.modules())


def _accelerate_as_it_is() -> dict[str, Any]:
    return {
        "init": Accelerator.__init__,
        "prepare_ao": vars(Accelerator)["_prepare_ao"],
        "fp8_backend": vars(Accelerator)["fp8_backend"],
        "convert_model": accelerator_module.convert_model,
    }


def test_c8g_the_crash_it_fixes_is_accelerates() -> None:
    """What accelerate does by itself: the variable alone sends a non-FP8 Accelerator down the torchao path."""
    os.environ["ACCELERATE_FP8_BACKEND"] = "AO"
    accelerator = Accelerator(mixed_precision="no")
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'config'"):
        accelerator.prepare(_model())


def test_c8g_an_accelerator_built_before_configure_prepares_in_high_precision(caplog: pytest.LogCaptureFixture) -> None:
    args = make_args()
    accelerator = Accelerator(mixed_precision="no")
    configure_fp8_environment(args)
    model = accelerator.prepare(_model())
    assert accelerator.fp8_backend.value == "NO" and not accelerator.fp8_enabled
    assert _float8_count(model) == 0 and isinstance(model[0], nn.Linear)
    with caplog.at_level(logging.WARNING):
        verify_fp8_status(accelerator, args)
    assert any(r.levelno >= logging.WARNING and "NOT in effect" in r.getMessage() for r in caplog.records)


def test_c8g_with_the_backend_unusable_only_the_fix_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """TE named where it is not installed: no handler can be built, so no FP8 injection; Accelerator() fails in
    accelerate (loudly), and an Accelerator that is not in FP8 still prepares."""
    for name in ("transformer_engine", "transformer_engine.pytorch"):
        monkeypatch.setitem(sys.modules, name, None)
    configure_fp8_environment(make_args(fp8_backend="te"))
    assert not is_accelerator_patched()
    model = Accelerator(mixed_precision="no").prepare(_model())
    assert isinstance(model[0], nn.Linear)
    AcceleratorState._reset_state(True)
    with pytest.raises(ImportError, match="TransformerEngine"):
        Accelerator()


@pytest.mark.parametrize("mixed_precision", ["no", "bf16", None])
def test_c14b_configure_alone_makes_the_trainers_accelerator_fp8(mixed_precision: str | None) -> None:
    """What the HF Trainer passes (its ``args.mixed_precision``, read before configure, and a DDP handler)."""
    configure_fp8_environment(make_args())
    accelerator = Accelerator(mixed_precision=mixed_precision, kwargs_handlers=[DistributedDataParallelKwargs()])
    assert accelerator.fp8_enabled and accelerator.fp8_backend.value == "AO"
    handler = accelerator.ao_recipe_handler
    assert isinstance(handler, AORecipeKwargs) and isinstance(handler.module_filter_func, ModuleFilter)
    assert handler.config.cast_config_weight.scaling_granularity.value == "axiswise"  # rowwise, not accelerate's
    model = accelerator.prepare(_model())
    assert _float8_count(model) == 2


def test_configure_is_idempotent_and_a_later_patch_call_changes_nothing() -> None:
    args = make_args()
    configure_fp8_environment(args)
    environ, init = dict(os.environ), Accelerator.__init__
    configure_fp8_environment(args)
    patch_accelerator_for_fp8()  # LLaMA-Factory's TE branch, after configure
    assert dict(os.environ) == environ and Accelerator.__init__ is init
    accelerator = Accelerator()
    assert accelerator.ao_recipe_handler is not None and accelerator.te_recipe_handler is None


@pytest.mark.parametrize("args", [make_args(fp8=False), make_args(fp8_backend="bogus")], ids=["fp8-off", "invalid"])
def test_nothing_is_patched_when_fp8_is_off_or_the_request_invalid(args: types.SimpleNamespace) -> None:
    before = _accelerate_as_it_is()
    try:
        configure_fp8_environment(args)
    except FP8ConfigError as exc:
        assert "valid values" in str(exc)
    assert _accelerate_as_it_is() == before and not is_accelerator_patched()


def test_unpatch_puts_back_everything_configure_changed(standin_te: Path) -> None:
    before = _accelerate_as_it_is()
    configure_fp8_environment(make_args(fp8_backend="te"))
    after = _accelerate_as_it_is()
    assert {name for name in before if after[name] is not before[name]} == set(before)
    assert unpatch_accelerator_for_fp8() is True
    assert _accelerate_as_it_is() == before
    assert not [name for name in CLASS_ATTRIBUTES if name in vars(Accelerator)]


def test_the_context_manager_removes_the_patch_it_installed() -> None:
    before = _accelerate_as_it_is()
    with fp8_environment(make_args()):
        assert is_accelerator_patched()
    assert _accelerate_as_it_is() == before
    patch_accelerator_for_fp8(make_args())
    with fp8_environment(make_args()):
        pass
    assert is_accelerator_patched()  # it was there before: left in place


def test_configure_writes_no_variable_outside_its_prefixes() -> None:
    """C8d, with the patch now installed by configure (it imports accelerate, which must set nothing either)."""
    before = dict(os.environ)
    configure_fp8_environment(make_args())
    changed = {n for n in set(before) | set(os.environ) if before.get(n) != os.environ.get(n)}
    assert changed and all(n.startswith(("ACCELERATE_MIXED_PRECISION", "ACCELERATE_FP8_", "FP8_")) for n in changed)


def test_c14b_llamafactorys_order_through_the_trainer_with_bf16(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Arguments first (``bf16=True``: ``args.mixed_precision`` is ``"bf16"``), configure alone (torchao: no patch
    call, as LLaMA-Factory does), the Trainer, verify at the end of ``__init__``, then ``train()``."""
    import dataclasses

    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    @dataclasses.dataclass
    class Args(TrainingArguments):
        fp8: bool = False
        fp8_backend: str = "auto"
        fp8_enable_fsdp_float8_all_gather: bool = False

    class Batch(torch.utils.data.Dataset):  # type: ignore[type-arg]
        ids = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[index], "labels": self.ids[index]}

    args = Args(
        output_dir=str(tmp_path),
        max_steps=2,
        logging_steps=1,
        per_device_train_batch_size=2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=True,
        disable_tqdm=True,
        fp8=True,
        fp8_backend="torchao",
    )
    assert args.mixed_precision == "bf16"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=16,
    )
    configure_fp8_environment(args)
    trainer = Trainer(model=LlamaForCausalLM(config), args=args, train_dataset=Batch())
    with caplog.at_level(logging.WARNING):
        verify_fp8_status(trainer.accelerator, args)
        trainer.train()
    assert trainer.accelerator.mixed_precision == "fp8"
    model = trainer.model
    assert isinstance(model, nn.Module)
    layers = {
        fqn.rsplit(".", 1)[-1]: type(m).__name__ for fqn, m in model.named_modules() if "proj" in fqn or "head" in fqn
    }
    assert layers == {
        **dict.fromkeys(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), "Float8Linear"),
        "lm_head": "Linear",
    }
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "torch.compile" not in r.getMessage()]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(np.isfinite(losses)), losses


def test_set_fp8_environment_is_the_environment_alone() -> None:
    """The original helpers' behaviour, for code that wants it: the variables, no patch."""
    from fp8ref.environment import set_fp8_environment

    before = _accelerate_as_it_is()
    changed, usable = set_fp8_environment(make_args())
    assert usable and changed["ACCELERATE_FP8_BACKEND"] == "AO" and os.environ["ACCELERATE_MIXED_PRECISION"] == "fp8"
    assert _accelerate_as_it_is() == before
    assert not Accelerator(mixed_precision="no").fp8_enabled  # the Trainer's case: the environment is not enough
