"""``fp8ref preflight``: its command line (report, ``--json``, exit status, bad input as one line), its inputs (the
LLaMA-Factory YAML without LLaMA-Factory, ``key=value``, an accelerate config file), the known upstream defects it
lists, and that it leaves the process as it found it. Its agreement with real runs: test_preflight_agreement.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

import fp8ref
from fp8ref.cli import main
from fp8ref.preflight import inputs, preflight
from fp8ref.preflight.decisions import _autowrap_argument, _evaluate
from fp8ref.preflight.inputs import PARSER_FP8REF_YAML, PARSER_HF, PARSER_LLAMAFACTORY, read_request
from fp8ref.upstream_defects import applicable_defects, installed_versions, load_defects

ROOT = Path(__file__).resolve().parents[2]
LLAMA3_70B = ROOT / "examples" / "configs" / "llama3-70b.json"
LF_70B = ROOT / "examples" / "preflight" / "llama3_70b_fp8_sft.yaml"
README_LF = ROOT / "examples" / "llamafactory" / "llama3_fp8_sft.yaml"
#: The defects issue 33 asks the data file to hold, at least.
REQUIRED_DEFECTS = {
    "accelerate-deepspeed-drops-te-recipe",
    "accelerate-removed-fp8recipekwargs",
    "accelerate-prepare-ao-crash-fp8-off",
    "accelerate-unwrap-model-compiled-submodule",
    "accelerate-to-kwargs-drops-default-fields",
    "peft-0.18.1-torchao-0.18",
    "te-delayedscaling-under-torch-compile",
}


@pytest.fixture(autouse=True)
def _root_handlers() -> Iterator[None]:
    """``main`` configures logging once (``basicConfig``) onto this test's captured stderr, and quiets transformers:
    put both back afterwards."""
    saved, level = logging.root.handlers[:], logging.getLogger("transformers").level
    yield
    logging.root.handlers[:] = saved
    logging.getLogger("transformers").setLevel(level)


def _yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_the_70b_llamafactory_config_reports_its_bound_in_both_modes(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["preflight", str(LF_70B), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["fp8_on"] and report["backend"] == "AO" and report["execution"] == "compiled"
    assert len(report["converted"]) == 80 * 7 and [s["fqn"] for s in report["skipped"]] == ["lm_head"]
    bound = report["payoff"]["bound"]
    assert report["payoff"]["tokens_per_gemm"] == 4096 * 2 and report["tokens_per_step"] == 4096 * 2 * 8
    assert bound["compiled"] > 1.0 > bound["eager"]  # plan's bound: 1.52x compiled, 0.60x eager on an H100
    assert code == 0 and report["exit_status"] == 0
    assert report["verdict"].startswith("FP8 WILL BE ON: torchao, rowwise, 560 of 561 linear layers, compiled")


def test_eager_is_on_but_does_not_pay_and_says_how_to_fix_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["preflight", str(LF_70B), "torch_compile=false"])
    out = capsys.readouterr().out
    assert code == 1
    assert "fix: set torch_compile: true in the config" in out
    assert out.splitlines()[-2].startswith("FP8 WILL BE ON: ")


def test_without_llamafactory_the_yaml_is_read_by_fp8ref_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where LLaMA-Factory is not installed (forced here, so the test means the same in every environment)."""
    monkeypatch.setattr(inputs, "llamafactory_installed", lambda: False)
    config = _yaml(tmp_path, f"model_name_or_path: {LLAMA3_70B}\nfp8: true\ncutoff_len: 1024\nbogus_lf_key: 3\n")
    report = preflight(config)
    assert report.parser == PARSER_FP8REF_YAML and "1024" in report.seq_len
    assert report.fp8_on and report.execution == "eager"


def test_the_yaml_parser_used_is_named(tmp_path: Path) -> None:
    report = preflight(_yaml(tmp_path, f"model_name_or_path: {LLAMA3_70B}\nfp8: true\n"))
    assert report.parser == (PARSER_LLAMAFACTORY if inputs.llamafactory_installed() else PARSER_FP8REF_YAML)


def test_fp8_not_requested_is_off_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["preflight", _yaml(tmp_path, f"model_name_or_path: {LLAMA3_70B}\n")])
    last = capsys.readouterr().out.splitlines()[-2]
    assert code == 1 and last == "FP8 WILL BE OFF: fp8 is not requested in the config; fix: set fp8: true (fp8=True)"


def test_key_value_training_arguments_with_lora(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["preflight", "fp8=true", "per_device_train_batch_size=4", "--lora-rank", "16", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["parser"] == PARSER_HF and report["lora"] and report["fp8_on"]
    assert report["lora_adapters"] and not report["lora_adapters_converted"]
    assert all(name.endswith(".base_layer") for name in report["converted"])
    assert code == report["exit_status"]


def test_an_accelerate_config_file_reaches_the_accelerator(tmp_path: Path) -> None:
    """accelerate launch's own code turns the file into the environment; its dynamo backend compiles the model."""
    accelerate_config = tmp_path / "accelerate.yaml"
    accelerate_config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nmixed_precision: 'no'\nnum_processes: 1\n"
        "use_cpu: true\ndynamo_config:\n  dynamo_backend: INDUCTOR\n"
    )
    request = read_request("fp8=true", accelerate_config=str(accelerate_config))
    assert request.accelerate_environ["ACCELERATE_DYNAMO_BACKEND"] == "INDUCTOR"
    report = preflight("fp8=true", accelerate_config=str(accelerate_config))
    assert report.fp8_on and report.execution == "compiled"


def test_no_lasting_effect_on_the_process() -> None:
    before = {name: value for name, value in os.environ.items() if name.startswith(("ACCELERATE_", "FP8_"))}
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    init = Accelerator.__init__
    report = preflight("fp8=true")
    assert report.fp8_on
    after = {name: value for name, value in os.environ.items() if name.startswith(("ACCELERATE_", "FP8_"))}
    assert after == before and Accelerator.__init__ is init and not fp8ref.is_accelerator_patched()
    assert not AcceleratorState._shared_state


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["preflight", "missing.yaml"], "config file 'missing.yaml' does not exist"),
        (["preflight", "fp8=true", "--model", "no/such-model-anywhere"], "preflight downloads nothing"),
        (["preflight", str(README_LF)], "'meta-llama/Meta-Llama-3-8B-Instruct' is neither a local folder"),
        (["preflight", str(LF_70B), "fp8_backend=bogus"], "invalid fp8_backend 'bogus'"),
        (["preflight", "fp8=true", "no_such_field=1"], "not TrainingArguments fields: no_such_field"),
        (["preflight", "fp8=true", "--helpers", "no_such_module_xyz"], "--helpers 'no_such_module_xyz'"),
        (["preflight", str(LF_70B), "deepspeed=missing.json"], "'missing.json' is not a file"),
        (["preflight", "fp8=true", "--gpu", "tpu"], "--gpu 'tpu' is not a known GPU"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fp8ref preflight: error: ") and says in lines[0], captured.err
    assert captured.out == ""


def test_an_unknown_model_type_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "config.json"
    model.write_text(json.dumps({"model_type": "no-such-architecture"}))
    assert main(["preflight", "fp8=true", "--model", str(model)]) == 2
    assert "does not know model_type 'no-such-architecture'" in capsys.readouterr().err


def test_the_defect_list_has_the_required_entries_and_typed_ranges() -> None:
    defects = {defect.id: defect for defect in load_defects()}
    assert set(defects) >= REQUIRED_DEFECTS
    dropped = defects["accelerate-deepspeed-drops-te-recipe"]
    assert dropped.applies_to({"accelerate": "1.15.0"}) and dropped.applies_to({"accelerate": "1.11.0"})
    assert not dropped.applies_to({"accelerate": "1.16.0"}) and not dropped.applies_to({})
    peft = defects["peft-0.18.1-torchao-0.18"]
    assert peft.applies_to({"peft": "0.18.1", "torchao": "0.18.0"})
    assert not peft.applies_to({"peft": "0.18.1", "torchao": "0.17.0"})
    assert not peft.applies_to({"peft": "0.21.2", "torchao": "0.18.0"})


def test_the_defects_listed_are_those_of_the_installed_versions() -> None:
    found = applicable_defects()
    versions = installed_versions(load_defects())
    for defect in load_defects():
        holds = all(
            versions.get(package) is not None and Version(str(versions[package])) in spec
            for package, spec in defect.affects
        )
        assert (defect in found) is holds, defect.id
    assert all(defect.backend in (None, "te") for defect in applicable_defects(backend="te"))


def test_the_deepspeed_recipe_path_is_read_from_the_installed_accelerate() -> None:
    """The handler ``_prepare_deepspeed`` and ``prepare_model`` pass to ``apply_fp8_autowrap``, evaluated on an object
    that holds only a ``TERecipeKwargs``-like handler in ``te_recipe_handler``."""
    import inspect

    from accelerate import Accelerator

    holder = type("Holder", (), {"te_recipe_handler": "te", "fp8_recipe_handler": None})()
    for method in ("_prepare_deepspeed", "prepare_model"):
        expression = _autowrap_argument(method)
        assert expression is not None, method
        value, attribute = _evaluate(expression, holder)
        source = inspect.getsource(getattr(Accelerator, method))
        assert f"self.{attribute}" in source
        assert value == getattr(holder, attribute)


def test_under_deepspeed_a_dropped_te_recipe_is_predicted_where_accelerate_drops_it(
    tmp_path: Path, standin_te: Path
) -> None:
    """fp8ref hands its recipe to the DeepSpeed path; the suite's broken implementation that takes the hand-off back
    gets the recipe dropped wherever the installed accelerate's ``_prepare_deepspeed`` reads only
    ``fp8_recipe_handler`` (then the stand-in TE's default ``DelayedScaling`` runs). A process per run: DeepSpeed
    keeps process-wide state."""
    import inspect

    from accelerate import Accelerator
    from transformer_engine.common.recipe import DelayedScaling

    drops = "apply_fp8_autowrap(model, self.fp8_recipe_handler)" in inspect.getsource(Accelerator._prepare_deepspeed)
    deepspeed = tmp_path / "zero2.json"
    deepspeed.write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}))
    broken = ROOT / "tests" / "conformance_meta" / "broken"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(standin_te), str(broken), *sys.path])}
    for helpers, dropped in (("fp8ref", False), ("fp8broken_te_recipe_dropped_under_deepspeed", drops)):
        argv = ["fp8=true", "fp8_backend=te", f"deepspeed={deepspeed}", "--helpers", helpers, "--json"]
        command = [sys.executable, "-m", "fp8ref", "preflight", *argv]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode in (0, 1), proc.stderr[-3000:]
        report = json.loads(proc.stdout)
        assert report["distributed_type"] == "DEEPSPEED" and report["fp8_on"], report
        assert report["te_recipe_dropped"] is dropped, helpers
        history = DelayedScaling().amax_history_len if dropped else 16
        assert report["te_forward_recipe"]["amax_history_len"] == history, helpers
        assert any("drops the TERecipeKwargs" in p["problem"] for p in report["problems"]) is dropped


def test_transformer_engine_missing_here_is_off_with_where_to_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("transformer_engine", "transformer_engine.pytorch"):
        monkeypatch.setitem(sys.modules, name, None)  # not importable, on any machine
    report = preflight("fp8=true", ["fp8_backend=te"])
    assert not report.fp8_on and report.exit_status == 1
    assert report.stops_at is not None and report.stops_at[0] == "patch_accelerator_for_fp8()"
    assert report.verdict().startswith("FP8 WILL BE OFF: the run stops at patch_accelerator_for_fp8()")
    assert "fix: install Transformer Engine where the run will be" in report.verdict()
