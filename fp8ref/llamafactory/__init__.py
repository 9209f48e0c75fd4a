"""Run LLaMA-Factory's own command line with fp8ref's five FP8 helpers in place of its ``fp8_utils`` module.

::

    python -m fp8ref.llamafactory train config.yaml [key=value ...]

is ``llamafactory-cli train config.yaml [key=value ...]``, except that before LLaMA-Factory runs, the five helpers
(``create_fp8_kwargs``, ``get_fp8_mixed_precision``, ``configure_fp8_environment``, ``verify_fp8_status``,
``patch_accelerator_for_fp8``) are replaced by fp8ref's wherever LLaMA-Factory holds them: in
``llamafactory.train.fp8_utils`` (so a module that imports them later gets fp8ref's) and in every LLaMA-Factory
module that already imported them (0.9.5: ``llamafactory.train.sft.trainer`` and ``llamafactory.train.pt.trainer``,
the only ones that do). Nothing of LLaMA-Factory is edited on disk. Every LLaMA-Factory command works (``train``,
``export``, ``webui``, ...); only ``train`` uses the helpers. After ``train`` it prints fp8ref's FP8 report of the
trainer's accelerator and a last line ``FP8: IN EFFECT``, ``FP8: NOT IN EFFECT`` or ``FP8: not requested``.

Distributed training: where LLaMA-Factory's launcher starts ``torchrun`` (more than one device, or
``FORCE_TORCHRUN=1``), every process it starts runs :mod:`fp8ref.llamafactory.torchrun_entry`, which swaps the
helpers the same way before LLaMA-Factory's ``run_exp``.

Exit status: LLaMA-Factory's own; after ``train``, 1 when FP8 was requested and is not in effect; 2, with one line
naming what is wrong and no traceback, for bad input (no command, LLaMA-Factory missing or without the helpers, a
config file that is missing or not a mapping, invalid FP8 settings or a backend not usable here, LoRA with a peft
and torchao that do not work together (see ``fp8ref doctor``), arguments LLaMA-Factory's parser rejects, or an FP8
request fp8ref refuses).

This is a tool, like :mod:`fp8ref.cli`: it imports fp8ref's helpers; the helpers never import it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fp8ref.backends import resolve_backend
from fp8ref.config import FP8Settings
from fp8ref.deepspeed_check import check_deepspeed_compatible, deepspeed_requested
from fp8ref.errors import FP8Error

logger = logging.getLogger(__name__)

PROG = "python -m fp8ref.llamafactory"
HELPERS = (
    "create_fp8_kwargs",
    "get_fp8_mixed_precision",
    "configure_fp8_environment",
    "verify_fp8_status",
    "patch_accelerator_for_fp8",
)
FP8_UTILS = "llamafactory.train.fp8_utils"
#: The modules of LLaMA-Factory 0.9.5 that ``from ..fp8_utils import ...`` (found in its wheel); imported and
#: swapped up front. Any other already-imported ``llamafactory`` module that holds one of the helpers is swapped too.
IMPORTERS = ("llamafactory.train.sft.trainer", "llamafactory.train.pt.trainer")
TORCHRUN_ENTRY = Path(__file__).resolve().with_name("torchrun_entry.py")
USAGE = (
    f"usage: {PROG} COMMAND [CONFIG.yaml] [KEY=VALUE ...]  (COMMAND as for llamafactory-cli: train, "
    "export, chat, webui, ...)"
)


class DropInError(Exception):
    """Bad input: reported as one line, exit status 2."""


@dataclass
class Swap:
    """What :func:`swap_helpers` replaced, and the last ``verify_fp8_status`` call LLaMA-Factory made."""

    version: str
    modules: list[str] = field(default_factory=list)
    last_verify: tuple[Any, Any] | None = None


def llamafactory_version() -> str:
    try:
        return importlib.metadata.version("llamafactory")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def _installed() -> bool:
    try:
        return importlib.util.find_spec("llamafactory") is not None
    except (ImportError, ValueError):  # a None entry in sys.modules: its import was blocked
        return False


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if not _installed():
            raise DropInError("LLaMA-Factory is not installed here: pip install llamafactory") from exc
        if exc.name is not None and (exc.name == name or name.startswith(exc.name + ".")):
            raise DropInError(
                f"llamafactory {llamafactory_version()} has no module {exc.name}: this drop-in knows the layout of "
                "LLaMA-Factory 0.9.5"
            ) from exc
        raise


def swap_helpers() -> Swap:
    """Put fp8ref's five helpers where LLaMA-Factory holds its own; returns what was swapped.

    Raises :class:`DropInError` when LLaMA-Factory is missing or has no ``train.fp8_utils`` with the five helpers.
    """
    import fp8ref

    fp8_utils = _import(FP8_UTILS)
    missing = [name for name in HELPERS if not callable(getattr(fp8_utils, name, None))]
    if missing:
        raise DropInError(
            f"llamafactory {llamafactory_version()}: {FP8_UTILS} has no {', '.join(missing)}: this drop-in knows "
            "LLaMA-Factory 0.9.5"
        )
    swap = Swap(version=llamafactory_version())
    originals = {name: getattr(fp8_utils, name) for name in HELPERS}

    def verify_fp8_status(accelerator: Any, training_args: Any) -> Any:
        swap.last_verify = (accelerator, training_args)
        return fp8ref.verify_fp8_status(accelerator, training_args)

    replacements: dict[str, Callable[..., Any]] = {name: getattr(fp8ref, name) for name in HELPERS}
    replacements["verify_fp8_status"] = verify_fp8_status
    for name in IMPORTERS:
        _import(name)
    for module_name, module in sorted(sys.modules.items()):
        if module is None or not (module_name == "llamafactory" or module_name.startswith("llamafactory.")):
            continue
        held = [name for name in HELPERS if vars(module).get(name) is originals[name]]
        for name in held:
            setattr(module, name, replacements[name])
        if held:
            swap.modules.append(module_name)
    return swap


def _config_errors() -> tuple[type[BaseException], ...]:
    """What LLaMA-Factory's ``read_args`` raises for a file it cannot read: ``OSError``, ``ValueError`` (JSON), and
    the YAML and OmegaConf errors (both installed with LLaMA-Factory)."""
    errors: list[type[BaseException]] = [OSError, ValueError]
    for module_name, name in (("yaml", "YAMLError"), ("omegaconf.errors", "OmegaConfBaseException")):
        try:
            errors.append(getattr(importlib.import_module(module_name), name))
        except ImportError:
            continue
    return tuple(errors)


def _read_config(arguments: Sequence[str]) -> dict[str, Any] | None:
    """The training arguments as LLaMA-Factory will read them (its ``read_args``: the config file merged with the
    ``key=value`` overrides), or ``None`` when they are plain ``--key value`` command-line options."""
    if not arguments or not arguments[0].endswith((".yaml", ".yml", ".json")):
        return None
    path = Path(arguments[0])
    if not path.is_file():
        raise DropInError(f"config file {arguments[0]} does not exist")
    parser = _import("llamafactory.hparams.parser")
    saved = list(sys.argv)
    sys.argv = [saved[0], *arguments]
    try:
        config = parser.read_args()
    except _config_errors() as exc:
        raise DropInError(f"config file {arguments[0]} cannot be read: {type(exc).__name__}: {exc}") from exc
    except AttributeError as exc:
        if not arguments[0].endswith(".json"):
            raise
        # LLaMA-Factory 0.9.5's read_args calls json.load(Path(...)): every .json config fails this way.
        raise DropInError(
            f"llamafactory {llamafactory_version()} cannot read a .json config ({arguments[0]}: {exc}): "
            "write it as YAML (.yaml)"
        ) from exc
    finally:
        sys.argv = saved
    if not isinstance(config, dict):
        raise DropInError(f"config file {arguments[0]} is not a mapping of argument names to values")
    return config


def _check_config(config: dict[str, Any] | None) -> FP8Settings | None:
    """The FP8 request of ``config``, checked before LLaMA-Factory loads anything (``None`` without a config file):
    valid settings, a backend usable here, no FSDP float8 all-gather under DeepSpeed, and for LoRA a peft and a
    torchao that work together."""
    if config is None:
        return None
    names = ("fp8", "fp8_backend", "fp8_enable_fsdp_float8_all_gather", "fp8_recipe", "fp8_auto_filter", "deepspeed")
    arguments = types.SimpleNamespace(**{name: config[name] for name in names if name in config})
    try:
        settings = FP8Settings.from_training_args(arguments)
        if settings.enabled:
            check_deepspeed_compatible(
                settings.enable_fsdp_float8_all_gather,
                deepspeed=deepspeed_requested(arguments),
                where="the config names a DeepSpeed config",
            )
            resolve_backend(settings)  # the backend must be usable here: say so before LLaMA-Factory loads a model
    except FP8Error as exc:
        raise DropInError(f"FP8 settings: {exc}") from exc
    if config.get("finetuning_type") == "lora":
        from fp8ref.doctor import lora_torchao_verdict

        verdict = lora_torchao_verdict()
        if verdict is not None and not verdict.compatible:
            raise DropInError(f"{verdict.name}: {verdict.detail}. Fix: {verdict.fix}")
    return settings


def _reject_bad_arguments() -> None:
    """Report LLaMA-Factory's own argument errors (``get_train_args`` raising ``ValueError``, or ``ImportError`` for
    a package the arguments need, such as ``deepspeed``) as bad input."""
    tuner: Any = _import("llamafactory.train.tuner")
    original = tuner.get_train_args

    def get_train_args(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except (ValueError, ImportError) as exc:  # an unknown key, a bad value, a package the arguments need
            raise DropInError(f"LLaMA-Factory rejects the arguments: {exc}") from exc

    tuner.get_train_args = get_train_args


def report_after_training(swap: Swap, settings: FP8Settings | None) -> int:
    """Print fp8ref's FP8 report of the trainer's accelerator; the exit status (1: FP8 requested, not in effect)."""
    if swap.last_verify is None:
        if settings is not None and settings.enabled:
            print(
                f"{PROG}: fp8 was requested, but LLaMA-Factory never called verify_fp8_status: its trainer for this "
                "stage does not use the FP8 helpers (in 0.9.5 only the pt and sft stages do)"
            )
            print("FP8: NOT IN EFFECT")
            return 1
        print("FP8: not requested")
        return 0
    from fp8ref.verify.status import inspect_fp8_status

    accelerator, training_args = swap.last_verify
    if not getattr(training_args, "fp8", False):
        print("FP8: not requested")
        return 0
    # Inspected, not verified again: LLaMA-Factory's own verify call has logged the notices once already.
    report = inspect_fp8_status(accelerator, FP8Settings.from_training_args(training_args), training_args)
    print(f"{PROG}: fp8ref's FP8 report of the trainer's accelerator after training:")
    print(report.summary(notices=False))
    if report.notices:
        print(f"  notices: {len(report.notices)} (the fp8ref WARNING above)")
    print("FP8: IN EFFECT" if report.in_effect else "FP8: NOT IN EFFECT")
    return 0 if report.in_effect else 1


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def run_worker(arguments: Sequence[str]) -> int:
    """One process of a ``torchrun`` launch: swap, then LLaMA-Factory's ``run_exp`` on ``arguments``."""
    settings = _check_config(_read_config(arguments))
    swap = swap_helpers()
    _reject_bad_arguments()
    tuner: Any = _import("llamafactory.train.tuner")
    sys.argv = [sys.argv[0], *arguments]
    tuner.run_exp()
    status = report_after_training(swap, settings) if _rank() == 0 else 0
    return status


def run(argv: Sequence[str]) -> int:
    """``python -m fp8ref.llamafactory COMMAND ...``: swap the helpers, then LLaMA-Factory's launcher."""
    if not argv or argv[0].startswith("-"):
        raise DropInError(USAGE)
    command, arguments = argv[0], list(argv[1:])
    settings = _check_config(_read_config(arguments)) if command == "train" else None
    swap = swap_helpers()
    print(
        f"{PROG}: LLaMA-Factory {swap.version} with fp8ref's FP8 helpers in place of {FP8_UTILS}'s "
        f"(swapped in {', '.join(swap.modules)})",
        flush=True,
    )
    launcher: Any = _import("llamafactory.launcher")
    if command == "train":
        _reject_bad_arguments()
        # Its launcher starts `torchrun <launcher.__file__> ARGS` for distributed training: each process then runs
        # fp8ref's entry, which swaps the helpers in that process too.
        launcher.__file__ = str(TORCHRUN_ENTRY)
    sys.argv = [sys.argv[0], command, *arguments]
    launcher.launch()
    if command != "train":
        return 0
    return report_after_training(swap, settings)


def show_fp8ref_logs() -> None:
    """Print fp8ref's log records from INFO up, beside LLaMA-Factory's own (which configures only its own logger):
    what fp8ref set and patched, the recipe, and verify's report or warning."""
    fp8ref_logger = logging.getLogger("fp8ref")
    if not fp8ref_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[fp8ref %(levelname)s] %(name)s: %(message)s"))
        fp8ref_logger.addHandler(handler)
        fp8ref_logger.setLevel(logging.INFO)
        fp8ref_logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    show_fp8ref_logs()
    try:
        return run(arguments)
    except DropInError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except FP8Error as exc:  # configure or the patch refused the request (FP8ConfigError, backend unavailable)
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
