"""The FSDP2 child (``children/fsdp_float8.py``) on two CPU ranks (C15): how it starts, and its early start.

The child is declared in :mod:`.children` as ``fsdp2_ranks``; the ``fsdp_run`` fixture of C15 claims the process
started at the end of collection, or starts it at its first use.
"""

from __future__ import annotations

from pathlib import Path

from ..children.fsdp_float8 import INIT_METHOD_VARIABLE
from .early import EarlyStart
from .forks import can_fork
from .processes import Child, child_environment, child_module, fork_child, register, start, torchrun_command

#: The name under which the early process is registered and claimed (see :mod:`.children`).
NAME = "fsdp2_ranks"
CHILD = "fsdp_float8"
NPROC = 2
STEPS = 3
#: The functions the ranks call.
NEEDS = ("configure_fp8_environment", "create_fp8_kwargs", "get_fp8_mixed_precision")


def launch(impl_name: str, out_dir: Path, *, fork: bool = False) -> Child:
    """Start the child with two CPU ranks: under ``torch.distributed.run``, or ``fork``\\ ed from this process before
    any test ran (:mod:`.forks`), the ranks meeting through a file in ``out_dir``."""
    args = ["--impl", impl_name, "--out", str(out_dir), "--steps", str(STEPS)]
    what = "the 2-process FSDP2 run"
    if fork:
        env = child_environment(**{INIT_METHOD_VARIABLE: f"file://{out_dir / 'rendezvous'}"})
        return fork_child(CHILD, args, env, what, out_dir, ranks=NPROC)
    return start(torchrun_command(NPROC, child_module(CHILD), args), child_environment(), what)


def gloo_skip_reason() -> str | None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_gloo_available():
        return None
    return "this torch build has no gloo backend for torch.distributed"


def start_early(early: EarlyStart) -> None:
    """The two-process run, before the first test; the fixture still judges first whether there is anything to run
    (an implementation that drops the flag gets its verdict and the run is stopped)."""
    if not set(NEEDS) & set(early.missing) and gloo_skip_reason() is None:
        out_dir = early.temp_dir("c15")
        register(NAME, launch(early.impl_name, out_dir, fork=can_fork()), out_dir)
