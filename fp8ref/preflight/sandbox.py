"""Run a client's FP8 calls and build its Accelerator without lasting effects on the process.

What the helpers and accelerate change is put back on exit: ``os.environ``, the namespaces a patch changes (the
``Accelerator`` class, accelerate's module bindings such as ``convert_model``, transformers' ``Trainer``), accelerate's
state singletons, torch's random state, and a process group that a DeepSpeed plugin started.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import types
from collections.abc import Iterator
from typing import Any

#: Namespaces whose attributes FP8 patches change (fp8ref's, LLaMA-Factory's ``patch_accelerator_for_fp8``).
PATCHED_NAMESPACES = ("accelerate.accelerator", "accelerate.utils", "accelerate.utils.transformer_engine")
#: What DeepSpeed's ``init_distributed`` needs in one process (set only when missing).
SINGLE_PROCESS = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}

_MISSING = object()


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _namespaces() -> list[Any]:
    import accelerate.accelerator

    found: list[Any] = [importlib.import_module(name) for name in PATCHED_NAMESPACES]
    found.append(accelerate.accelerator.Accelerator)
    trainer = importlib.import_module("transformers.trainer")
    return [*found, trainer, trainer.Trainer]


def _put_back(target: Any, saved: dict[str, Any]) -> None:
    current = vars(target)
    for name in [name for name in current if name not in saved and not isinstance(current[name], types.ModuleType)]:
        delattr(target, name)
    for name, value in saved.items():
        if name not in ("__dict__", "__weakref__") and current.get(name, _MISSING) is not value:
            setattr(target, name, value)


def reset_accelerate_state() -> None:
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    PartialState._reset_state()
    GradientState._reset_state()


@contextlib.contextmanager
def sandbox(*, distributed: bool) -> Iterator[None]:
    """A block that starts from fresh accelerate state and leaves the process as it was.

    ``distributed``: the block may start a one-process group (a DeepSpeed plugin does): the variables it needs are
    set where missing, and a group started inside is destroyed on exit.
    """
    import torch

    environ = dict(os.environ)
    saved = [(target, dict(vars(target))) for target in _namespaces()]
    rng = torch.random.get_rng_state()
    dist_was_up = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        for name, value in SINGLE_PROCESS.items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("MASTER_PORT", _free_port())
        if not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
    reset_accelerate_state()
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and not dist_was_up:
            torch.distributed.destroy_process_group()
        for target, namespace in saved:
            _put_back(target, namespace)
        reset_accelerate_state()
        torch.random.set_rng_state(rng)
        os.environ.clear()
        os.environ.update(environ)
