"""The training setup preflight judges: a LLaMA-Factory YAML, or the arguments of a plain HF ``TrainingArguments`` (a
JSON file or ``key=value``), the DeepSpeed config they name, and an optional accelerate config file.

:func:`read_request` reads and checks the files (no torch, no transformers); :func:`build_training_args` builds the
``TrainingArguments`` the client would build, with LLaMA-Factory's own parser when it is installed, and must run
inside :func:`~fp8ref.preflight.sandbox.sandbox` (building them reads and writes process state).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fp8ref.errors import FP8ConfigError

CLIENT_LLAMAFACTORY = "llamafactory"
CLIENT_HF = "hf"
#: The FP8 fields of LLaMA-Factory 0.9.5's ``TrainingArguments`` (``Fp8Arguments``) and their defaults.
LLAMAFACTORY_FP8_FIELDS = {"fp8": False, "fp8_backend": "auto", "fp8_enable_fsdp_float8_all_gather": False}
#: fp8ref's two extra fields (see :mod:`fp8ref.config`), accepted beside a plain ``TrainingArguments``.
FP8REF_EXTRA_FIELDS = {"fp8_recipe": None, "fp8_auto_filter": False}
#: LLaMA-Factory's defaults for what preflight reads outside the ``TrainingArguments``.
LLAMAFACTORY_DEFAULTS = {"finetuning_type": "lora", "lora_rank": 8, "lora_target": "all", "cutoff_len": 2048}
DEFAULT_SEQ_LEN = 2048
PARSER_LLAMAFACTORY = "LLaMA-Factory's own parser (llamafactory.hparams.get_train_args)"
PARSER_FP8REF_YAML = (
    "fp8ref's reading of the YAML (LLaMA-Factory is not installed here): its HF TrainingArguments fields and "
    "LLaMA-Factory's fp8 fields; its other keys are not checked"
)
PARSER_HF = "transformers' TrainingArguments"


@dataclass(frozen=True)
class Request:
    """What the config asks for, read from its files, not yet built into ``TrainingArguments``."""

    client: str
    source: str
    values: dict[str, Any]
    model: str | None
    seq_len: int
    seq_len_source: str
    lora_rank: int | None = None
    lora_targets: tuple[str, ...] = ()
    accelerate_environ: dict[str, str] = field(default_factory=dict)
    accelerate_config: str | None = None

    @property
    def deepspeed(self) -> Any:
        return self.values.get("deepspeed")


def _value(text: str) -> Any:
    """A ``key=value`` value as YAML reads it: ``true`` a bool, ``16`` an int, anything else a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise FP8ConfigError(f"{pair!r} is not key=value")
        values[key.strip()] = _value(text)
    return values


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FP8ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FP8ConfigError(f"config file {path} cannot be read: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise FP8ConfigError(f"config file {path} is not a mapping of argument names to values")
    return data


def _positive(values: dict[str, Any], key: str, default: int) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FP8ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def _check_deepspeed(values: dict[str, Any]) -> None:
    config = values.get("deepspeed")
    if config is None or isinstance(config, dict):
        return
    if not isinstance(config, str) or not Path(config).is_file():
        raise FP8ConfigError(f"deepspeed: the DeepSpeed config {config!r} is not a file")
    try:
        json.loads(Path(config).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FP8ConfigError(f"deepspeed: {config} is not valid JSON: {exc}") from exc
    if importlib.util.find_spec("deepspeed") is None:
        raise FP8ConfigError(
            f"the config names a DeepSpeed config ({config}), but deepspeed is not installed here: pip install "
            "deepspeed (preflight runs accelerate's DeepSpeed path)"
        )


def accelerate_launch_environment(path: str) -> dict[str, str]:
    """The ``ACCELERATE_*`` variables ``accelerate launch --config_file PATH`` gives the script, as its own code
    computes them."""
    if not Path(path).is_file():
        raise FP8ConfigError(f"accelerate config file {path!r} does not exist")
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_simple_launcher_cmd_env

    try:
        arguments = launch_command_parser().parse_args(["--config_file", path, "preflight.py"])
        arguments, _, _ = _validate_launch_command(arguments)
        prepare = prepare_deepspeed_cmd_env if arguments.use_deepspeed else prepare_simple_launcher_cmd_env
        _, environ = prepare(arguments)
    except (ValueError, KeyError, TypeError, OSError, SystemExit) as exc:
        raise FP8ConfigError(f"accelerate cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return {name: value for name, value in environ.items() if name.startswith(("ACCELERATE_", "FP8_"))}


def read_request(
    config: str,
    overrides: list[str] | None = None,
    *,
    model: str | None = None,
    seq_len: int | None = None,
    lora_rank: int | None = None,
    lora_targets: list[str] | None = None,
    accelerate_config: str | None = None,
) -> Request:
    """Read the config: a LLaMA-Factory YAML, or a plain ``TrainingArguments`` as JSON or ``key=value``."""
    pairs = list(overrides or [])
    if "=" in config and not config.endswith((".yaml", ".yml", ".json")):
        client, source, values = CLIENT_HF, "key=value arguments", parse_pairs([config, *pairs])
    elif config.endswith((".yaml", ".yml")):
        client, source = CLIENT_LLAMAFACTORY, config
        values = {**_read_mapping(Path(config)), **parse_pairs(pairs)}
    elif config.endswith(".json"):
        client, source = CLIENT_HF, config
        values = {**_read_mapping(Path(config)), **parse_pairs(pairs)}
    else:
        raise FP8ConfigError(
            f"config {config!r}: give a LLaMA-Factory YAML (.yaml), a TrainingArguments JSON file (.json), or key=value"
        )
    _check_deepspeed(values)
    environ = accelerate_launch_environment(accelerate_config) if accelerate_config else {}
    if client == CLIENT_LLAMAFACTORY:
        lf = {**LLAMAFACTORY_DEFAULTS, **values}
        chosen_seq, seq_source = seq_len or _positive(lf, "cutoff_len", DEFAULT_SEQ_LEN), "cutoff_len"
        lora = lf["finetuning_type"] == "lora"
        rank = lora_rank or (_positive(lf, "lora_rank", 8) if lora else None)
        targets = tuple(lora_targets or ([t.strip() for t in str(lf["lora_target"]).split(",")] if lora else []))
        chosen_model = model or values.get("model_name_or_path")
    else:
        chosen_seq, seq_source = seq_len or DEFAULT_SEQ_LEN, "assumed (--seq-len sets it)"
        rank, targets, chosen_model = lora_rank, tuple(lora_targets or (["all"] if lora_rank else [])), model
    if seq_len:
        seq_source = "--seq-len"
    return Request(
        client, source, values, chosen_model, chosen_seq, seq_source, rank, targets, environ, accelerate_config
    )


def llamafactory_installed() -> bool:
    try:
        return importlib.util.find_spec("llamafactory") is not None
    except (ImportError, ValueError):
        return False


def _training_args_class(client: str) -> type:
    import transformers

    return transformers.Seq2SeqTrainingArguments if client == CLIENT_LLAMAFACTORY else transformers.TrainingArguments


def _own_parse(request: Request) -> Any:
    """``TrainingArguments`` from the config's fields, with the FP8 fields of the client set on them."""
    cls = _training_args_class(request.client)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    extra = dict(LLAMAFACTORY_FP8_FIELDS)
    if request.client == CLIENT_HF:
        extra.update(FP8REF_EXTRA_FIELDS)
        unknown = sorted(set(request.values) - names - set(extra))
        if unknown:
            raise FP8ConfigError(f"{request.source}: not TrainingArguments fields: {', '.join(unknown)}")
    values = {name: value for name, value in request.values.items() if name in names}
    values.setdefault("report_to", "none")
    try:
        args = cls(**values)
    except (ValueError, TypeError, ImportError) as exc:
        raise FP8ConfigError(f"TrainingArguments rejects the arguments: {exc}".splitlines()[0]) from exc
    for name, default in extra.items():
        setattr(args, name, request.values.get(name, default))
    return args


def on_this_machine(request: Request) -> Request:
    """``request`` with ``use_cpu: true`` where this machine has no GPU (``TrainingArguments`` refuse ``bf16`` on a
    CPU without it); the accelerator's FP8 decisions do not depend on the device."""
    import torch

    if torch.cuda.is_available() or "use_cpu" in request.values:
        return request
    return dataclasses.replace(request, values={**request.values, "use_cpu": True})


def build_training_args(request: Request) -> tuple[Any, str]:
    """The ``TrainingArguments`` the client builds, and which parser built them. Run inside the sandbox, after
    :attr:`Request.accelerate_environ` is applied (``accelerate launch`` sets it before the script starts)."""
    os.environ.update(request.accelerate_environ)
    request = on_this_machine(request)
    if request.client == CLIENT_HF:
        return _own_parse(request), PARSER_HF
    if not llamafactory_installed():
        return _own_parse(request), PARSER_FP8REF_YAML
    parser = importlib.import_module("llamafactory.hparams")
    try:
        parsed = parser.get_train_args(dict(request.values))
    except (ValueError, ImportError, TypeError) as exc:
        raise FP8ConfigError(f"LLaMA-Factory rejects the arguments: {exc}".splitlines()[0]) from exc
    return parsed[2], PARSER_LLAMAFACTORY
