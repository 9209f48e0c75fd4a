"""Contract C12e in fp8ref: torchao float8 layers that none runs under ``torch.compile`` get one WARNING that
names ``torch.compile`` and the switch for the user's setup; compiled ones get none.

Nothing is compiled here: a ``torch.compile`` wrapper (or ``Module.compile()``) compiles at its first call, and
no test calls a compiled model.
"""

from __future__ import annotations

import dataclasses
import logging
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from accelerate import Accelerator

from fp8ref import configure_fp8_environment, create_fp8_kwargs, verify_fp8_status
from fp8ref.verify import FP8Report
from fp8ref.verify.compiled import SWITCH_ACCELERATOR, SWITCH_MODEL, SWITCH_TRAINER

from .conftest import is_compile_notice, make_args


def _model() -> nn.Sequential:
    """Two eligible layers in two blocks, and a head that stays in high precision."""
    model = nn.Sequential()
    model.add_module("block0", nn.Sequential(nn.Linear(32, 64)))
    model.add_module("block1", nn.Sequential(nn.Linear(64, 32)))
    model.add_module("lm_head", nn.Linear(32, 16))
    return model


def _accelerator(**kwargs: Any) -> Accelerator:
    return Accelerator(mixed_precision="fp8", kwargs_handlers=create_fp8_kwargs(make_args()), **kwargs)


def _verify(accelerator: Any, caplog: pytest.LogCaptureFixture, args: Any = None, **kw: Any) -> FP8Report:
    with caplog.at_level(logging.WARNING):
        return verify_fp8_status(accelerator, make_args() if args is None else args, **kw)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("fp8ref")]


def _only_the_notice(caplog: pytest.LogCaptureFixture, switch: str) -> None:
    (record,) = _warnings(caplog)
    assert record.levelno == logging.WARNING and is_compile_notice(record)
    assert "torch.compile" in record.getMessage() and switch in record.getMessage()


def test_eager_layers_get_one_notice_with_the_accelerator_switch(caplog: pytest.LogCaptureFixture) -> None:
    accelerator = _accelerator()
    accelerator.prepare(_model())
    report = _verify(accelerator, caplog)
    assert report.in_effect and report.execution == "eager"
    assert report.compiled_layers == () and report.eager_layers == ("block0.0", "block1.0")
    _only_the_notice(caplog, SWITCH_ACCELERATOR)
    assert "FP8 layers running compiled: 0, eager: 2 (eager)" in report.summary()
    assert report.to_dict()["execution"] == {"mode": "eager", "compiled": 0, "eager": 2}
    assert report.compile_at_prepare is False


def test_the_notice_never_raises_even_strict(caplog: pytest.LogCaptureFixture) -> None:
    accelerator = _accelerator()
    accelerator.prepare(_model())
    report = _verify(accelerator, caplog, strict=True)
    assert report.in_effect
    _only_the_notice(caplog, SWITCH_ACCELERATOR)


def test_switch_for_the_trainer_and_for_a_bare_model(caplog: pytest.LogCaptureFixture) -> None:
    accelerator = _accelerator()
    accelerator.prepare(_model())
    _verify(accelerator, caplog, args=make_args(torch_compile=False))
    _only_the_notice(caplog, SWITCH_TRAINER)
    caplog.clear()
    model = _accelerator().prepare(_model())  # an accelerator-like object that is not accelerate's
    bare = types.SimpleNamespace(fp8_enabled=True, fp8_backend="AO", _models=[model])
    _verify(bare, caplog)
    _only_the_notice(caplog, SWITCH_MODEL)


@pytest.mark.parametrize("how", ["torch.compile(model)", "model.compile()", "blocks compiled in place"])
def test_compiled_layers_are_quiet(how: str, caplog: pytest.LogCaptureFixture) -> None:
    model = _model()
    if how == "torch.compile(model)":
        model = torch.compile(model)  # type: ignore[assignment]
    elif how == "model.compile()":
        model.compile()
    else:  # accelerate's regional compilation under FSDP2 and DeepSpeed
        model.block0.compile()
        model.block1.compile()
    accelerator = _accelerator()
    accelerator.prepare(model)
    report = _verify(accelerator, caplog)
    assert report.in_effect and report.execution == "compiled" and len(report.compiled_layers) == 2
    assert _warnings(caplog) == []


def test_partly_compiled_is_reported_and_quiet(caplog: pytest.LogCaptureFixture) -> None:
    model = _model()
    model.block1.compile()
    accelerator = _accelerator()
    accelerator.prepare(model)
    report = _verify(accelerator, caplog)
    assert report.execution == "partly" and report.compiled_layers == ("block1.0",)
    assert report.eager_layers == ("block0.0",)
    assert _warnings(caplog) == []


def test_a_compiled_module_beside_the_layers_does_not_count(caplog: pytest.LogCaptureFixture) -> None:
    model = _model()
    model.lm_head.compile()  # holds no FP8 layer
    accelerator = _accelerator()
    accelerator.prepare(model)
    assert _verify(accelerator, caplog).execution == "eager"
    _only_the_notice(caplog, SWITCH_ACCELERATOR)


def test_dynamo_plugin_compiles_at_prepare_and_the_deferred_check_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    accelerator = _accelerator(dynamo_backend="inductor")
    pending = _verify(accelerator, caplog)
    assert pending.pending and pending.compile_at_prepare is True
    assert "the accelerator compiles the model at prepare(): yes" in pending.summary()
    with caplog.at_level(logging.WARNING):
        accelerator.prepare(_model())  # the deferred check of C12d runs here
    assert _warnings(caplog) == []
    after = verify_fp8_status(accelerator, make_args())
    assert after.execution == "compiled"


def test_deferred_check_gives_the_notice_for_an_eager_model(caplog: pytest.LogCaptureFixture) -> None:
    accelerator = _accelerator()
    pending = _verify(accelerator, caplog)
    assert pending.pending and pending.compile_at_prepare is False and _warnings(caplog) == []
    with caplog.at_level(logging.WARNING):
        accelerator.prepare(_model())
    _only_the_notice(caplog, SWITCH_ACCELERATOR)


def test_te_layers_never_get_the_notice(caplog: pytest.LogCaptureFixture) -> None:
    te_linear = type(
        "Linear",
        (nn.Module,),
        {"__module__": "transformer_engine.pytorch.module.linear", "forward": lambda self, x: x},
    )
    model = nn.Sequential()
    model.add_module("fc", te_linear())
    accelerator = types.SimpleNamespace(fp8_enabled=True, fp8_backend="TE", _models=[model])
    report = _verify(accelerator, caplog, args=make_args(fp8_backend="te"))
    assert report.in_effect and report.execution == "eager"
    assert _warnings(caplog) == []


@dataclasses.dataclass
class _FP8TrainingArguments:
    """The FP8 fields LLaMA-Factory adds to its TrainingArguments (mixed in below)."""

    fp8: bool = True
    fp8_backend: str = "torchao"
    fp8_enable_fsdp_float8_all_gather: bool = False


def test_trainer_with_torch_compile_compiles_at_prepare(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Through the HF Trainer: ``torch_compile=True`` gives its Accelerator a dynamo plugin, which compiles the
    model at prepare; judged on the structure after prepare (nothing runs)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    @dataclasses.dataclass
    class Arguments(_FP8TrainingArguments, TrainingArguments):  # type: ignore[misc]
        pass

    configure_fp8_environment(make_args())  # before the TrainingArguments, which read the environment
    args = Arguments(output_dir=str(tmp_path), torch_compile=True, use_cpu=True, report_to=[])
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2
    )
    config.vocab_size = 64
    trainer = Trainer(model=LlamaForCausalLM(config), args=args)
    pending = _verify(trainer.accelerator, caplog, args=args)
    assert pending.pending and pending.compile_at_prepare is True and _warnings(caplog) == []
    with caplog.at_level(logging.WARNING):
        trainer.accelerator.prepare(trainer.model)
    assert _warnings(caplog) == []
    report = verify_fp8_status(trainer.accelerator, args)
    assert report.in_effect and report.execution == "compiled"
    assert report.compiled_layers == report.converted and report.converted
