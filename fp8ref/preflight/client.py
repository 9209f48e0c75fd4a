"""The client's own FP8 calls, in its order, and the ``Accelerator`` its ``Trainer`` builds.

Two call orders:

- LLaMA-Factory 0.9.5's trainers (``llamafactory/train/sft/trainer.py``): with ``TrainingArguments`` already parsed,
  ``configure_fp8_environment(args)`` when ``fp8`` is set, then ``patch_accelerator_for_fp8()`` only for
  ``fp8_backend == "te"``, then the HF ``Trainer.__init__``. fp8ref's drop-in (``python -m fp8ref.llamafactory``)
  keeps this order with fp8ref's functions.
- The plain HF ``Trainer`` (contract clause C14): ``configure_fp8_environment(args)``, ``patch_accelerator_for_fp8()``,
  then ``Trainer(...)``.

The ``Accelerator`` is built by the installed transformers' own ``Trainer.create_accelerator_and_postprocess``,
called on a ``Trainer`` whose ``__init__`` did not run (it reads only ``args`` and ``model``): the same
arguments, plugins (DeepSpeed, torch.compile's dynamo plugin) and handlers the real ``Trainer`` gives it.
"""

from __future__ import annotations

import importlib
import logging
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from fp8ref.errors import FP8ConfigError, FP8Error
from fp8ref.preflight.inputs import CLIENT_LLAMAFACTORY

logger = logging.getLogger(__name__)

HELPER_NAMES = ("configure_fp8_environment", "patch_accelerator_for_fp8")
ORDER_TEXT = {
    CLIENT_LLAMAFACTORY: "LLaMA-Factory 0.9.5's trainer: configure_fp8_environment(args), "
    "patch_accelerator_for_fp8() only for fp8_backend te, then Trainer.__init__",
    "hf": "the HF Trainer: configure_fp8_environment(args), patch_accelerator_for_fp8(), then Trainer(...)",
}


@dataclass
class ClientRun:
    """What the client's calls did: the calls made, the accelerator built, and where the run would stop."""

    calls: list[str] = field(default_factory=list)
    accelerator: Any = None
    #: The first call that raised: ``(call, "ExceptionType: message")``; the real run stops there too.
    failure: tuple[str, str] | None = None


def load_helpers(name: str) -> types.ModuleType:
    """The module of ``--helpers``: ``fp8ref`` or any importable module with the helpers."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise FP8ConfigError(f"--helpers {name!r} cannot be imported: {exc}") from exc
    missing = [helper for helper in HELPER_NAMES if not callable(getattr(module, helper, None))]
    if missing:
        raise FP8ConfigError(f"--helpers {name!r} has no {', '.join(missing)}")
    return module


def _call(run: ClientRun, name: str, function: Callable[..., Any], *arguments: Any) -> bool:
    """Call one step of the client; record it, and the exception the run would stop with. ``False`` when it raised.

    Invalid FP8 settings (``FP8ConfigError``) are bad input, raised on: the run would refuse them too.
    """
    run.calls.append(name)
    try:
        function(*arguments)
    except FP8ConfigError:
        raise
    except (FP8Error, ImportError, ValueError, RuntimeError, AttributeError, TypeError, KeyError) as exc:
        run.failure = (name, f"{type(exc).__name__}: {exc}")
        return False
    return True


def _create_trainer_accelerator(training_args: Any, model: nn.Module) -> Any:
    from transformers import Trainer

    trainer = object.__new__(Trainer)
    trainer.args = training_args
    trainer.model = model
    trainer.deepspeed = None
    Trainer.create_accelerator_and_postprocess(trainer)
    return trainer.accelerator


def run_client(client: str, helpers: types.ModuleType, training_args: Any, model: nn.Module) -> ClientRun:
    """Run the client's FP8 calls and build its Trainer's accelerator (inside the sandbox)."""
    run = ClientRun()
    configure, patch = (getattr(helpers, name) for name in HELPER_NAMES)
    if client == CLIENT_LLAMAFACTORY:
        if getattr(training_args, "fp8", False):
            if not _call(run, "configure_fp8_environment(args)", configure, training_args):
                return run
            if getattr(training_args, "fp8_backend", "auto") == "te" and not _call(
                run, "patch_accelerator_for_fp8()", patch
            ):
                return run
    else:
        if not _call(run, "configure_fp8_environment(args)", configure, training_args):
            return run
        if getattr(training_args, "fp8", False) and not _call(run, "patch_accelerator_for_fp8()", patch):
            return run

    def build() -> None:
        run.accelerator = _create_trainer_accelerator(training_args, model)

    _call(run, "Trainer.__init__ (create_accelerator_and_postprocess)", build)
    return run
