"""The real client: LLaMA-Factory 0.9.5's own trainer (``run_exp``, its CLI) on a tiny local Llama, on the CPU.

Each run is a process of its own (``lf_child.py``, or ``python -m fp8ref.llamafactory`` itself); they all start
from the module fixture, two at a time (CI has two cores). The runs with LLaMA-Factory's own ``fp8_utils`` record
what it does, so that the README's account of it is measured: FP8 silently off. The runs with fp8ref's helpers
dropped in check that FP8 is in effect in LLaMA-Factory's own call order (contract clause C14b): every projection an
FP8 layer built with fp8ref's recipe and filter, ``lm_head`` kept, verify quiet, LoRA adapters kept in high
precision, and with (the suite's stand-in) Transformer Engine the recipe HYBRID / 16 / max in the forward.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .tiny_assets import DATASET, build_all

HERE = Path(__file__).resolve().parent
CHILD = HERE / "lf_child.py"
STAND_INS = HERE / "stand_ins"
TIMEOUT_S = 480
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LAYERS = 2
FLOAT8 = "torchao.float8.float8_linear.Float8Linear"
NN_LINEAR = "torch.nn.modules.linear.Linear"
TE_LINEAR = "transformer_engine.pytorch.Linear"
PEFT_LORA_LINEAR = "peft.tuners.lora.layer.Linear"
FP8REF_TE_RECIPE = "DelayedScaling HYBRID amax_history_len=16 amax_compute_algo=max"


def base_config(assets: dict[str, Path], output_dir: Path) -> dict[str, Any]:
    return {
        "model_name_or_path": str(assets["model"]),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": DATASET,
        "dataset_dir": str(assets["data"]),
        "template": "default",
        "cutoff_len": 64,
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 1,
        "per_device_train_batch_size": 4,
        "learning_rate": 1.0e-3,
        "max_steps": 3,
        "use_cpu": True,
        "seed": 0,
        "fp8": True,
        "fp8_backend": "torchao",
    }


@dataclass(frozen=True)
class Run:
    """A child run: ``lf_child.py`` (``helpers`` set) or a command line (``argv`` set)."""

    helpers: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    argv: tuple[str, ...] = ()
    te: bool = False
    env: tuple[tuple[str, str], ...] = ()


LORA = (("finetuning_type", "lora"), ("lora_rank", 16), ("lora_target", "all"))
RUNS: dict[str, Run] = {
    "own": Run(helpers="llamafactory"),
    "own-bf16": Run(helpers="llamafactory", overrides=(("bf16", True),)),
    "own-te": Run(helpers="llamafactory", overrides=(("fp8_backend", "te"),), te=True),
    "own-lora": Run(helpers="llamafactory", overrides=LORA),
    "fp8ref-cli": Run(argv=("-m", "fp8ref.llamafactory", "train", "{config}")),
    "fp8ref-bf16": Run(helpers="fp8ref", overrides=(("bf16", True),)),
    "fp8ref-lora": Run(helpers="fp8ref", overrides=LORA),
    "fp8ref-te": Run(helpers="fp8ref", overrides=(("fp8_backend", "te"),), te=True),
    "fp8ref-cli-torchrun": Run(
        argv=("-m", "fp8ref.llamafactory", "train", "{config}"),
        env=(("FORCE_TORCHRUN", "1"), ("NPROC_PER_NODE", "1")),
    ),
    "bad-no-command": Run(argv=("-m", "fp8ref.llamafactory")),
    "bad-missing-config": Run(argv=("-m", "fp8ref.llamafactory", "train", "{missing}")),
    "bad-fp8-backend": Run(argv=("-m", "fp8ref.llamafactory", "train", "{config}", "fp8_backend=bogus")),
    "bad-unknown-key": Run(argv=("-m", "fp8ref.llamafactory", "train", "{config}", "no_such_argument=1")),
    "bad-json-config": Run(argv=("-m", "fp8ref.llamafactory", "train", "{json_config}")),
    "doctor": Run(argv=("-m", "fp8ref", "doctor")),
}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float
    result: dict[str, Any]

    def describe(self) -> str:
        error, trace = self.result.get("error", ""), self.result.get("traceback", "")
        return f"exit {self.code}, {error}\n{trace}\n{self.stdout[-2500:]}\n{self.stderr[-2500:]}"


def _environment(work: Path, run: Run, standin_te: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "FP8_", "PYTEST_"))}
    paths = [str(STAND_INS), *([str(standin_te)] if run.te else []), *sys.path]
    env.update(
        PYTHONPATH=os.pathsep.join(paths), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )
    # LLaMA-Factory's launcher starts `torchrun` by name: this environment's, however the tests were started.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(dict(run.env))
    return env


def _start(name: str, run: Run, work: Path, assets: dict[str, Path], standin_te: Path) -> Outcome:
    directory = work / name
    directory.mkdir()
    config = {**base_config(assets, directory / "out"), **dict(run.overrides)}
    config_path = directory / "config.json"
    config_path.write_text(json.dumps(config))
    # The command line gets YAML: LLaMA-Factory 0.9.5 cannot read a .json config (its read_args passes a Path to
    # json.load), which the bad-json-config run records.
    yaml_path = directory / "config.yaml"
    yaml_path.write_text(yaml.safe_dump(config))
    out = directory / "result.json"
    if run.helpers is not None:
        command = [sys.executable, str(CHILD), "--helpers", run.helpers, "--config", str(config_path)]
        command += ["--out", str(out)]
    else:
        fill = {"config": str(yaml_path), "json_config": str(config_path), "missing": str(directory / "missing.yaml")}
        command = [sys.executable, *(part.format(**fill) for part in run.argv)]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=directory,
        env=_environment(work, run, standin_te),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    result = json.loads(out.read_text()) if out.exists() else {}
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, result)


def _write_standin_te(directory: Path) -> Path:
    """The conformance suite's stand-in Transformer Engine (``fp8ref_conformance``, installed with fp8ref)."""
    from fp8ref_conformance.kit.standin_te import write_standin_te

    written: Path = write_standin_te(directory)
    return written


def _needed(session: pytest.Session) -> list[str]:
    """The runs the selected tests judge (their ``name`` parameter, or their ``runs`` marker): ``-k`` runs fewer."""
    needed: set[str] = set()
    for item in session.items:
        marker = item.get_closest_marker("runs")
        needed.update(marker.args if marker is not None else ())
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("name") in RUNS:
            needed.add(callspec.params["name"])
    return [name for name in RUNS if name in needed]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Outcome]:
    work = tmp_path_factory.mktemp("llamafactory")
    assets = build_all(work / "assets")
    standin_te = _write_standin_te(work / "standin_te")
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(_start, name, RUNS[name], work, assets, standin_te) for name in _needed(request.session)
        }
        outcomes = {name: future.result() for name, future in futures.items()}
    timings = ", ".join(f"{name} {outcome.seconds:.0f} s" for name, outcome in outcomes.items())
    print(f"\nLLaMA-Factory runs: {timings}")
    for name, outcome in outcomes.items():
        print(
            f"  {name}: {_layer_summary(outcome.result)}"
            if "linear" in outcome.result
            else f"  {name}: exit {outcome.code}"
        )
    if "fp8ref-cli" in outcomes:
        print("  python -m fp8ref.llamafactory train config.yaml, last lines:")
        print("\n".join("    " + line for line in outcomes["fp8ref-cli"].stdout.strip().splitlines()[-6:]))
    return outcomes


def _layer_summary(result: dict[str, Any]) -> str:
    """Mixed precision and how many linear layers of each class (``lora.Linear`` is PEFT's wrapper)."""
    counts: dict[str, int] = {}
    for cls in result["linear"].values():
        short = "lora.Linear" if cls == PEFT_LORA_LINEAR else cls.rsplit(".", 2)[-2] + "." + cls.rsplit(".", 1)[-1]
        counts[short] = counts.get(short, 0) + 1
    head = next((cls.rsplit(".", 1)[-1] for fqn, cls in result["linear"].items() if fqn.endswith("lm_head")), "?")
    recipes = f", TE forward recipe {result['te_autocast_recipes']}" if result.get("te_autocast_recipes") else ""
    return f"mixed_precision {result['mixed_precision']}, {counts}, lm_head {head}{recipes}"


def _trained(runs: dict[str, Outcome], name: str) -> dict[str, Any]:
    outcome = runs[name]
    assert outcome.code == 0 and "error" not in outcome.result, f"{name}: {outcome.describe()}"
    return outcome.result


def _projections(linear: dict[str, str], suffix: str = "") -> dict[str, str]:
    return {
        fqn: cls
        for fqn, cls in linear.items()
        if fqn.split(".")[-1 - bool(suffix)] in PROJECTIONS and fqn.endswith(suffix)
    }


def _lm_head(linear: dict[str, str]) -> str:
    (head,) = [cls for fqn, cls in linear.items() if fqn.split(".")[-1] == "lm_head"]
    return head


def _fp8ref_warnings(logs: list[dict[str, Any]]) -> list[str]:
    """fp8ref's records at WARNING and above, but the torch.compile notice (contract C12e: these runs are eager)."""
    return [
        f"{r['logger']}: {r['message']}"
        for r in logs
        if r["logger"].startswith("fp8ref")
        and r["level"] in ("WARNING", "ERROR", "CRITICAL")
        and "torch.compile" not in r["message"]
    ]


# --------------------------------------------------------------------------- LLaMA-Factory's own module


@pytest.mark.parametrize(
    ("name", "mixed_precision"), [("own", "no"), ("own-bf16", "bf16"), ("own-te", "no"), ("own-lora", "no")]
)
def test_its_own_module_leaves_fp8_off_silently(runs: dict[str, Outcome], name: str, mixed_precision: str) -> None:
    """Measured: with fp8: true, accelerate trains without FP8 (mixed precision ``no``, or ``bf16`` with bf16: true),
    every linear layer stays ``nn.Linear`` (and PEFT's ``lora.Linear`` wrappers), and LLaMA-Factory says so only
    at INFO, in two lines."""
    result = _trained(runs, name)
    assert result["mixed_precision"] == mixed_precision
    classes = set(result["linear"].values())
    assert classes == ({NN_LINEAR, PEFT_LORA_LINEAR} if name == "own-lora" else {NN_LINEAR}), classes
    plain = [fqn for fqn, cls in result["linear"].items() if cls == NN_LINEAR]
    assert len(plain) == LAYERS * len(PROJECTIONS) * (3 if name == "own-lora" else 1) + 1
    said = [(r["level"], r["message"]) for r in result["logs"] if "fp8_enabled=False" in r["message"]]
    said += [
        (r["level"], r["message"]) for r in result["logs"] if "Accelerate FP8 status - enabled: False" in r["message"]
    ]
    assert [level for level, _ in said] == ["INFO", "INFO"], said
    assert not [r for r in result["logs"] if r["level"] not in ("DEBUG", "INFO")]
    assert not result.get("te_autocast_recipes")


# --------------------------------------------------------------------------- fp8ref dropped in


@pytest.mark.runs("fp8ref-cli")
def test_the_drop_in_cli_trains_in_fp8_and_says_so(runs: dict[str, Outcome]) -> None:
    outcome = runs["fp8ref-cli"]
    assert outcome.code == 0, outcome.describe()
    lines = outcome.stdout.strip().splitlines()
    assert lines[0].startswith("python -m fp8ref.llamafactory: LLaMA-Factory 0.9.5 with fp8ref's FP8 helpers")
    for module in ("llamafactory.train.fp8_utils", "llamafactory.train.sft.trainer", "llamafactory.train.pt.trainer"):
        assert module in lines[0]
    assert lines[-1] == "FP8: IN EFFECT"
    report = "\n".join(lines[lines.index("FP8: IN EFFECT (backend AO, recipe rowwise)") :])
    assert f"converted layers: {LAYERS * len(PROJECTIONS)}" in report and "- lm_head:" in report
    warnings = [line for line in outcome.stderr.splitlines() if line.startswith("[fp8ref WARNING")]
    assert not [line for line in warnings if "torch.compile" not in line], warnings
    # The eager run's C12e notice, said once in the whole run (LLaMA-Factory's verify call), and shortly
    said = [line for line in (outcome.stdout + outcome.stderr).splitlines() if "runs under torch.compile" in line]
    assert len(said) == 1 and len(said[0]) < 400, said


@pytest.mark.runs("fp8ref-cli-torchrun")
def test_the_drop_in_cli_swaps_in_every_torchrun_process(runs: dict[str, Outcome]) -> None:
    outcome = runs["fp8ref-cli-torchrun"]
    assert outcome.code == 0, outcome.describe()
    assert "Initializing 1 distributed tasks" in outcome.stdout + outcome.stderr
    assert outcome.stdout.strip().splitlines()[-1] == "FP8: IN EFFECT"


@pytest.mark.parametrize("name", ["fp8ref-bf16", "fp8ref-lora"])
def test_fp8ref_puts_fp8_in_effect_in_llamafactorys_call_order(runs: dict[str, Outcome], name: str) -> None:
    result = _trained(runs, name)
    assert result["mixed_precision"] == "fp8"
    suffix = ".base_layer" if name.endswith("lora") else ""
    projections = _projections(result["linear"], suffix)
    assert len(projections) == LAYERS * len(PROJECTIONS) and set(projections.values()) == {FLOAT8}, projections
    assert _lm_head(result["linear"]) == NN_LINEAR
    assert result["report"]["in_effect"], result["report"]["summary"]
    assert not _fp8ref_warnings(result["logs"])
    assert all(isinstance(loss, float) and loss == loss for loss in result["losses"]) and len(result["losses"]) == 3


@pytest.mark.runs("fp8ref-lora")
def test_lora_adapters_are_kept_in_high_precision_and_are_what_trains(runs: dict[str, Outcome]) -> None:
    result = _trained(runs, "fp8ref-lora")
    adapters = {fqn: cls for fqn, cls in result["linear"].items() if ".lora_A." in fqn or ".lora_B." in fqn}
    assert len(adapters) == 2 * LAYERS * len(PROJECTIONS) and set(adapters.values()) == {NN_LINEAR}, adapters
    assert result["changed"] and all(".lora_A." in n or ".lora_B." in n for n in result["changed"]), result["changed"]
    assert f"LoRA adapter layers kept in high precision: {len(adapters)}" in result["report"]["summary"]


@pytest.mark.runs("fp8ref-te")
def test_transformer_engine_layers_run_with_fp8refs_recipe(runs: dict[str, Outcome]) -> None:
    """LLaMA-Factory's TE branch (configure, then patch_accelerator_for_fp8()) with the suite's stand-in TE."""
    result = _trained(runs, "fp8ref-te")
    projections = _projections(result["linear"])
    assert len(projections) == LAYERS * len(PROJECTIONS) and set(projections.values()) == {TE_LINEAR}, projections
    assert _lm_head(result["linear"]) == NN_LINEAR
    assert result["te_autocast_recipes"] == [FP8REF_TE_RECIPE]
    assert result["report"]["in_effect"] and not _fp8ref_warnings(result["logs"])


# --------------------------------------------------------------------------- the tool's edges


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("bad-no-command", "usage: python -m fp8ref.llamafactory COMMAND"),
        ("bad-missing-config", "missing.yaml does not exist"),
        ("bad-fp8-backend", "invalid fp8_backend 'bogus'"),
        ("bad-unknown-key", "no_such_argument"),
        ("bad-json-config", "cannot read a .json config"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(runs: dict[str, Outcome], name: str, says: str) -> None:
    outcome = runs[name]
    assert outcome.code == 2, outcome.describe()
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("python -m fp8ref.llamafactory: error:")]
    assert len(errors) == 1 and says in errors[0], outcome.stderr[-2000:]
    assert "Traceback" not in outcome.stderr


@pytest.mark.runs("doctor")
def test_doctor_finds_peft_and_torchao_compatible_here(runs: dict[str, Outcome]) -> None:
    """This environment's pair (torch 2.13 + torchao 0.17 beside LLaMA-Factory's peft 0.18.1) is the one that works."""
    outcome = runs["doctor"]
    assert outcome.code == 0, outcome.describe()
    assert "[OK ] LoRA (peft 0.18.1, torchao 0.17.0)" in outcome.stdout, outcome.stdout
