"""``python -m fp8ref.llamafactory``'s mechanics, against a small fake LLaMA-Factory laid out as 0.9.5 is (the real
one, with its own pins, runs in ``tox -e llamafactory``: tests/llamafactory). The fake's trainer calls the helpers
in LLaMA-Factory's order around a real accelerate ``Accelerator(mixed_precision="no", kwargs_handlers=[DDP])``."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from torch import nn

import fp8ref
from fp8ref import llamafactory as dropin
from fp8ref.doctor import CompatibilityVerdict, lora_torchao_verdict

FP8_UTILS = """
def create_fp8_kwargs(training_args):
    return []
def get_fp8_mixed_precision(training_args):
    return None
def configure_fp8_environment(training_args):
    pass
def verify_fp8_status(accelerator, training_args):
    pass
def patch_accelerator_for_fp8():
    pass
"""
TRAINER = """
import types
from ..fp8_utils import configure_fp8_environment, patch_accelerator_for_fp8, verify_fp8_status

def train(config):
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    args = types.SimpleNamespace(**config)
    if args.fp8:
        configure_fp8_environment(args)
        if args.fp8_backend == "te":
            patch_accelerator_for_fp8()
    accelerator = Accelerator(mixed_precision="no", kwargs_handlers=[DistributedDataParallelKwargs()])
    if args.fp8:
        verify_fp8_status(accelerator, args)
    torch.manual_seed(0)
    return accelerator.prepare(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 32)))
"""
TUNER = """
from ..hparams.parser import read_args
TRAINED = []

def get_train_args(args):
    unknown = sorted(set(args) - {"stage", "fp8", "fp8_backend", "finetuning_type"})
    if unknown:
        raise ValueError(f"Some keys are not used by the HfArgumentParser: {unknown}")
    return args

def run_exp(args=None, callbacks=None):
    args = get_train_args(read_args(args))
    if args.get("stage", "sft") == "sft":
        from .sft.trainer import train
        TRAINED.append(train(args))
"""
PARSER = """
import json, sys
from pathlib import Path

def read_args(args=None):
    if args is not None:
        return args
    if len(sys.argv) > 1 and sys.argv[1].endswith(".json"):
        config = json.loads(Path(sys.argv[1]).read_text())
        config.update(dict(item.split("=", 1) for item in sys.argv[2:]))
        return config
    return sys.argv[1:]
"""
LAUNCHER = """
import sys

def launch():
    command = sys.argv.pop(1)
    if command == "train":
        from .train.tuner import run_exp
        run_exp()
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _unload_llamafactory() -> None:
    for name in [n for n in sys.modules if n == "llamafactory" or n.startswith("llamafactory.")]:
        del sys.modules[name]


@pytest.fixture
def fake_llamafactory(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "site"
    _write(
        root,
        {
            "llamafactory/__init__.py": "",
            "llamafactory/launcher.py": LAUNCHER,
            "llamafactory/hparams/__init__.py": "",
            "llamafactory/hparams/parser.py": PARSER,
            "llamafactory/train/__init__.py": "",
            "llamafactory/train/fp8_utils.py": FP8_UTILS,
            "llamafactory/train/tuner.py": TUNER,
            "llamafactory/train/sft/__init__.py": "",
            "llamafactory/train/sft/trainer.py": TRAINER,
            "llamafactory/train/pt/__init__.py": "",
            "llamafactory/train/pt/trainer.py": "from ..fp8_utils import verify_fp8_status\n",
            "llamafactory/train/later.py": "from .fp8_utils import verify_fp8_status, create_fp8_kwargs\n",
        },
    )
    _unload_llamafactory()
    sys.path.insert(0, str(root))
    argv = list(sys.argv)
    try:
        yield root
    finally:
        sys.argv = argv
        sys.path.remove(str(root))
        _unload_llamafactory()


def _config(tmp_path: Path, **values: object) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"stage": "sft", "fp8": True, "fp8_backend": "torchao", **values}))
    return str(path)


def test_every_module_that_holds_the_helpers_gets_fp8refs(fake_llamafactory: Path) -> None:
    swap = dropin.swap_helpers()
    assert swap.modules == [
        "llamafactory.train.fp8_utils",
        "llamafactory.train.pt.trainer",
        "llamafactory.train.sft.trainer",
    ]
    from llamafactory.train import fp8_utils, later  # `later` is imported after the swap
    from llamafactory.train.sft import trainer

    for module in (fp8_utils, trainer):
        assert module.configure_fp8_environment is fp8ref.configure_fp8_environment
    for module in (fp8_utils, trainer, later):
        assert module.verify_fp8_status.__module__ == "fp8ref.llamafactory"  # records the call, then fp8ref's
    assert later.create_fp8_kwargs is fp8ref.create_fp8_kwargs


def test_train_runs_in_fp8_and_ends_with_the_verdict(
    fake_llamafactory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dropin.main(["train", _config(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("python -m fp8ref.llamafactory: LLaMA-Factory") and "sft.trainer" in lines[0]
    assert lines[-1] == "FP8: IN EFFECT" and "  converted layers: 2" in lines
    from llamafactory.train.tuner import TRAINED

    assert [type(m).__name__ for m in TRAINED[0]] == ["Float8Linear", "Float8Linear"]


def test_a_stage_whose_trainer_never_calls_the_helpers_is_reported(
    fake_llamafactory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dropin.main(["train", _config(tmp_path, stage="dpo")]) == 1
    out = capsys.readouterr().out
    assert "never called verify_fp8_status" in out and out.strip().endswith("FP8: NOT IN EFFECT")


def _error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert dropin.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m fp8ref.llamafactory: error: "), err
    return err[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "usage: python -m fp8ref.llamafactory COMMAND"),
        (["train", "{tmp}/nope.yaml"], "nope.yaml does not exist"),
        (["train", "{config}", "fp8_backend=bogus"], "invalid fp8_backend 'bogus'"),
        (["train", "{config}", "no_such_argument=1"], "LLaMA-Factory rejects the arguments: Some keys are not used"),
        (["train", "{bad_json}"], "cannot be read: JSONDecodeError"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    fake_llamafactory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    fill = {"tmp": str(tmp_path), "config": _config(tmp_path), "bad_json": str(tmp_path / "bad.json")}
    assert says in _error_of([part.format(**fill) for part in argv], capsys)


def test_a_llamafactory_without_the_helpers_is_named(
    fake_llamafactory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    utils = fake_llamafactory / "llamafactory/train/fp8_utils.py"
    utils.write_text(utils.read_text().replace("def patch_accelerator_for_fp8", "def _gone"))
    assert "has no patch_accelerator_for_fp8" in _error_of(["train", _config(tmp_path)], capsys)


def test_without_llamafactory_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "llamafactory", None)
    assert "LLaMA-Factory is not installed here: pip install llamafactory" in _error_of(["env"], capsys)


def test_lora_with_an_incompatible_peft_and_torchao_is_refused_up_front(
    fake_llamafactory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fp8ref.doctor

    verdict = CompatibilityVerdict("LoRA (peft 0.18.1, torchao 0.18.0)", False, "imports X", "install Y")
    monkeypatch.setattr(fp8ref.doctor, "lora_torchao_verdict", lambda: verdict)
    error = _error_of(["train", _config(tmp_path, finetuning_type="lora")], capsys)
    assert "LoRA (peft 0.18.1, torchao 0.18.0): imports X. Fix: install Y" in error


# --------------------------------------------------------------------------- fp8ref doctor: PEFT's LoRA and torchao

PEFT_DISPATCH = """
def dispatch_torchao(target, adapter_name, lora_config, **kwargs):
    from torchao.dtypes import AffineQuantizedTensor
    from torchao.quantization import {name}
    return None
"""


@pytest.mark.parametrize(
    ("name", "compatible"), [("LinearActivationQuantizedTensor", False), ("Float8WeightOnlyConfig", True)]
)
def test_doctor_reads_what_peft_imports_and_checks_the_installed_torchao(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, compatible: bool
) -> None:
    """torchao 0.18 (this environment's) has no ``LinearActivationQuantizedTensor``; PEFT 0.18.1's LoRA imports it."""
    import torchao.quantization

    assert hasattr(torchao.quantization, name) is compatible  # the premise, on this environment's torchao
    _write(tmp_path, {"peft/__init__.py": "", "peft/tuners/lora/torchao.py": PEFT_DISPATCH.format(name=name)})
    monkeypatch.delitem(sys.modules, "peft", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    verdict = lora_torchao_verdict()
    assert verdict is not None and verdict.compatible is compatible
    if not compatible:
        assert f"{name} from torchao.quantization" in verdict.detail and "get_peft_model fails" in verdict.detail
        assert verdict.fix is not None and "torchao 0.17.0" in verdict.fix


def test_the_module_filter_keeps_what_llamafactorys_lora_adds() -> None:
    """Sanity of the premise the real-client LoRA run relies on (rank 16 adapters are divisible by 16)."""
    assert fp8ref.module_filter(nn.Linear(64, 16), "model.layers.0.self_attn.q_proj.lora_A.default") is False
    assert fp8ref.module_filter(nn.Linear(64, 64), "model.layers.0.self_attn.q_proj.base_layer") is True
