"""Children forked from the test process, for the training children started early (:mod:`.early`).

A fresh interpreter for the DeepSpeed run or an FSDP2 rank spends 3 to 6 s of a core importing torch, transformers'
Trainer, torchao and accelerate before its first step; a fork of the test process has them already. It is taken only
when collection has just ended, before any test ran, so the child inherits a process that nothing has changed yet:
the implementation as it was imported, no Accelerator, no patch. The child gets the environment a fresh child would
(:func:`.processes.child_environment`), a logging setup like a fresh interpreter's (no handler, WARNING), one torch
thread and a session of its own, writes its output to a file, calls the child module's ``main(argv)`` and leaves with
``os._exit``: nothing of the test process (its pytest session, atexit handlers, buffers) runs twice, and what the
child does to process-wide state (DeepSpeed's, torch.distributed's) ends with it.

Probes stay fresh interpreters: what they judge is an interpreter in which some packages never were importable.
Linux and macOS only (``os.fork``), and only from a process with one thread; elsewhere the children start as fresh
interpreters (:func:`can_fork`).
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

#: Imported before the first fork, so that no forked child imports them again (the test process needs them anyway).
PRELOAD = ("torchao.float8", "transformers.trainer")


def can_fork() -> bool:
    """Whether a child may be forked here: on a system with ``fork``, from a process with one thread (a lock that
    another thread holds at the fork stays held in the child forever)."""
    return hasattr(os, "fork") and sys.platform != "win32" and threading.active_count() == 1


def preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # the clauses that need the package say so; a child imports what it can
            continue


class ForkedProcess:
    """The part of :class:`subprocess.Popen` that :class:`.processes.Child` uses, for a forked child whose stdout
    and stderr go to one file."""

    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def communicate(self, input: None = None, timeout: float | None = None) -> tuple[str, None]:
        self.wait(timeout)
        return self.output.read_text(errors="replace"), None


def fork_module(
    module: str, args: list[str], env: dict[str, str], output_dir: Path, *, ranks: int = 0
) -> ForkedProcess:
    """Fork, and in the child run ``module.main(args)`` with ``env`` as its whole environment (see the module
    docstring); the child's exit status is what ``main`` returns. With ``ranks``, the child is the launcher of that
    many ranks, each a fork of it with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set, in its process group; its
    exit status is the first rank's that failed, else 0."""
    fd, name = tempfile.mkstemp(prefix="child-", suffix=".log", dir=output_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid != 0:
        os.close(fd)
        return ForkedProcess(pid, Path(name))
    _exit_with(lambda: _child(fd, module, args, env, ranks))


def _exit_with(work: Callable[[], int]) -> NoReturn:
    """End this forked process with what ``work`` returns (1 and the traceback when it raises), output flushed."""
    code = 1
    try:
        code = work()
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _child(fd: int, module: str, args: list[str], env: dict[str, str], ranks: int) -> int:
    os.setsid()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (the child's stdout until os._exit)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(1)
    sys.argv = [module, *args]
    return _launch_ranks(module, args, ranks) if ranks else _main(module, args)


def _main(module: str, args: list[str]) -> int:
    try:
        return int(importlib.import_module(module).main(args) or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def _launch_ranks(module: str, args: list[str], ranks: int) -> int:
    pids = []
    for rank in range(ranks):
        pid = os.fork()
        if pid == 0:
            os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(ranks), LOCAL_WORLD_SIZE=str(ranks))
            _exit_with(lambda: _main(module, args))
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    return next((code for code in codes if code != 0), 0)
