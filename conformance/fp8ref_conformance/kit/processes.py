"""The suite's child processes, started one way: a fresh interpreter running one of ``children/`` as a module, with
this process's import path, without the caller's ``ACCELERATE_*``/``FP8_*`` variables, in a process group of its
own that is killed on timeout or when the test is done.

No port is chosen here: a port found free now can be taken by another process before the child binds it. The
launcher (``torch.distributed.run``'s rendezvous) or the one rank's own store binds port 0, and the system picks.

- :func:`run_probe`: contract calls in a fresh interpreter where some packages are hidden (C4, C7, C8b);
- :func:`start_module` and :func:`torchrun_command`: the FSDP2 (C15) and DeepSpeed (C16) workers, one rank or
  several under ``torch.distributed.run``;
- :func:`register` and :func:`claim`: a child started before its test (:mod:`.early`) is handed to that test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from .env import without_fp8_variables

#: The package the children belong to (``fp8ref_conformance``).
SUITE_PACKAGE = __name__.split(".", 1)[0]
#: The marker before the probe's JSON line on its stdout (``children/probe.py`` writes it).
PROBE_MARKER = "@@fp8-conformance-probe@@"


def child_module(name: str) -> str:
    """The dotted name of the child ``name`` (``"probe"`` -> ``fp8ref_conformance.children.probe``)."""
    return f"{SUITE_PACKAGE}.children.{name}"


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment without FP8/accelerate settings, with this process's ``sys.path`` (so the
    implementation and the suite import in the child as they do here), one torch thread, and ``extra``."""
    env = without_fp8_variables(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["OMP_NUM_THREADS"] = "1"
    env["MASTER_ADDR"] = "127.0.0.1"
    env.pop("MASTER_PORT", None)
    env.pop("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", None)  # "1" makes torchrun pick its workers' port in advance
    env.update(extra)
    return env


def single_rank_environment() -> dict[str, str]:
    """The variables of a one-process distributed run (DeepSpeed on the CPU): rank 0 of 1, whose own store binds
    port 0, so the system picks a free port at the moment it is bound (no other rank needs to know it)."""
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}


def torchrun_command(nproc: int, module: str, args: list[str]) -> list[str]:
    """``python -m torch.distributed.run`` with ``nproc`` ranks on this machine, each running ``module``.

    The c10d rendezvous on port 0: the launcher's store binds a port the system picks, and the workers find
    each other through it (``--master-port`` would be a port chosen before anyone binds it)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "127.0.0.1:0",
        "--local-addr",
        "127.0.0.1",
        "-m",
        module,
        *args,
    ]


def kill_group(proc: Process) -> None:
    """Terminate a child and everything it started (they share its session), then make sure they are gone."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


class Process(Protocol):
    """What :class:`Child` uses of a process: a :class:`subprocess.Popen`, or a :class:`.forks.ForkedProcess`."""

    pid: int
    returncode: int | Any

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[str, Any]: ...


@dataclass
class Child:
    """A started child process: :meth:`wait` for its exit status and output, within a time bound."""

    proc: Process
    what: str
    started: float

    def wait(self, timeout: float) -> tuple[int, str]:
        """Wait until ``timeout`` seconds after the start; on timeout kill the group and fail the test."""
        try:
            output, _ = self.proc.communicate(timeout=max(1.0, timeout - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            output, _ = self.proc.communicate()
            pytest.fail(f"{self.what} did not finish within {timeout:.0f} s:\n{output[-4000:]}")
        finally:
            kill_group(self.proc)
        return self.proc.returncode, output

    def stop(self) -> None:
        kill_group(self.proc)


def start(command: list[str], env: dict[str, str], what: str) -> Child:
    """Start ``command`` in a session of its own, its stdout and stderr together."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    return Child(proc, what, time.monotonic())


def start_module(name: str, args: list[str], env: dict[str, str], what: str) -> Child:
    """``python -m fp8ref_conformance.children.<name> ARGS`` (one process)."""
    return start([sys.executable, "-m", child_module(name), *args], env, what)


def fork_child(
    name: str, args: list[str], env: dict[str, str], what: str, output_dir: Path, *, ranks: int = 0
) -> Child:
    """The child ``name`` forked from this process (:mod:`.forks`; only before any test ran), ``ranks`` of it with
    ``ranks``."""
    from .forks import fork_module, preload

    preload()
    return Child(fork_module(child_module(name), args, env, output_dir, ranks=ranks), what, time.monotonic())


#: The children started early (:mod:`.early`) and not yet claimed, by key, each with what its test needs to read its
#: results.
_STARTED: dict[str, tuple[Child, Any]] = {}


def register(key: str, child: Child, data: Any = None) -> None:
    """Keep ``child``, started before its test, for the test that will :func:`claim` it under ``key``."""
    stale = _STARTED.pop(key, None)
    if stale is not None:
        stale[0].stop()
    _STARTED[key] = (child, data)


def claim(key: str) -> tuple[Child, Any] | None:
    """The child started early under ``key`` and its data, now the caller's to wait for; ``None`` if none was."""
    return _STARTED.pop(key, None)


def stop_unclaimed() -> None:
    """Stop every child started early that no test claimed (its tests were skipped, blocked or failed first)."""
    while _STARTED:
        _, (child, _) = _STARTED.popitem()
        child.stop()


@dataclass(frozen=True)
class Probe:
    """Contract ``calls`` against ``impl`` in a fresh interpreter where ``hide`` cannot be imported (``standin_dir``:
    the stand-in TE on its path; ``report_imported``: modules whose import it reports). Each call is
    ``{"id": str, "fn": contract function name, "args": {attribute: value}}``."""

    impl: str
    calls: tuple[dict[str, Any], ...]
    hide: tuple[str, ...] = ()
    standin_dir: Path | None = None
    report_imported: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return "probe:" + json.dumps(self.spec(), sort_keys=True)

    def spec(self) -> dict[str, Any]:
        """What ``children/probe.py`` reads."""
        return {
            "impl": self.impl,
            "hide": list(self.hide),
            "standin": str(self.standin_dir) if self.standin_dir else None,
            "calls": list(self.calls),
            "report": list(self.report_imported),
        }


_PROBE_CACHE: dict[str, dict[str, Any]] = {}


def start_probe(probe: Probe, *, early: bool = False) -> Child:
    """Start ``probe``; ``early``: register it for the :func:`run_probe` of the same probe (one child for one probe,
    however many modules ask for it early)."""
    if early and probe.key in _STARTED:
        return _STARTED[probe.key][0]
    child = start_module("probe", [json.dumps(probe.spec())], child_environment(), f"the probe of {probe.impl!r}")
    if early:
        register(probe.key, child)
    return child


def run_probe(probe: Probe, *, timeout: float = 180.0) -> dict[str, Any]:
    """Run ``probe``: ``{"results": [...], "imported": {...}}`` as written by ``children/probe.py``. The same probe is
    answered once per session, and one started early (:func:`start_probe`) is waited for, not started again."""
    if probe.key in _PROBE_CACHE:
        return _PROBE_CACHE[probe.key]
    started = claim(probe.key)
    child = started[0] if started is not None else start_probe(probe)
    code, output = child.wait(timeout)
    payload = [line for line in output.splitlines() if line.startswith(PROBE_MARKER)]
    if code != 0 or not payload:
        raise RuntimeError(f"probe subprocess for {probe.impl!r} failed (exit {code}):\n{output[-3000:]}")
    result: dict[str, Any] = json.loads(payload[-1][len(PROBE_MARKER) :])
    _PROBE_CACHE[probe.key] = result
    return result


def read_rank_files(pattern_dir: Path, prefix: str) -> dict[int, dict[str, Any]]:
    """The JSON result files ``prefix*`` in ``pattern_dir`` that the ranks of a child wrote, by rank."""
    ranks: dict[int, dict[str, Any]] = {}
    for path in sorted(pattern_dir.glob(prefix + "*")):
        data = json.loads(path.read_text())
        ranks[int(data["rank"])] = data
    return ranks
