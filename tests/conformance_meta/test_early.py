"""Children started early (``fp8ref_conformance.kit.early``): a child started at the end of collection is the one
its test waits for, never a second one, and a child no test claims is stopped with the session."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from fp8ref_conformance.kit import processes
from fp8ref_conformance.kit.contract import NO_BACKEND_CALLS, no_backend_probe

from .suite_runs import SuiteRun, run_suites, suite_args


def _sleeper() -> processes.Child:
    return processes.start([sys.executable, "-c", "import time; time.sleep(60)"], {}, "a sleeper")


def test_a_registered_child_is_claimed_once_and_an_unclaimed_one_is_stopped() -> None:
    claimed, left = _sleeper(), _sleeper()
    processes.register("claimed", claimed, "its data")
    processes.register("left", left)
    assert processes.claim("claimed") == (claimed, "its data")
    assert processes.claim("claimed") is None, "a child is handed to one test only"
    processes.stop_unclaimed()
    assert left.proc.poll() is not None, "the unclaimed child still runs after the session's cleanup"
    assert claimed.proc.poll() is None, "the claimed child is its test's to stop, not the cleanup's"
    claimed.stop()


def test_run_probe_waits_for_the_probe_started_early_instead_of_starting_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[Any] = []
    real_start_module = processes.start_module

    def counting(name: str, args: list[str], env: dict[str, str], what: str) -> processes.Child:
        started.append(name)
        return real_start_module(name, args, env, what)

    monkeypatch.setattr(processes, "start_module", counting)
    monkeypatch.setattr(processes, "_PROBE_CACHE", {})
    probe = no_backend_probe("fp8ref")
    processes.start_probe(probe, early=True)
    processes.start_probe(no_backend_probe("fp8ref"), early=True)
    assert started == ["probe"], "two modules asking early for the same probe start one"
    out = processes.run_probe(probe)
    assert started == ["probe"], "run_probe started a second probe instead of waiting for the early one"
    assert {r["id"] for r in out["results"]} == {c["id"] for c in NO_BACKEND_CALLS}
    assert processes.claim(probe.key) is None


def test_a_one_process_session_starts_its_children_before_the_first_test(tmp_path: Path) -> None:
    """The C4 probe of a one-process run is started at the end of collection: its process is older than the first
    test (the run records when the probe started and when the first test began)."""
    plugin = tmp_path / "when_plugin.py"
    plugin.write_text(
        "import json, os, time\n"
        "from fp8ref_conformance.kit import processes\n"
        "seen = {}\n"
        "_real = processes.start_module\n"
        "def start_module(*a, **k):\n"
        "    seen.setdefault('child', time.monotonic())\n"
        "    return _real(*a, **k)\n"
        "processes.start_module = start_module\n"
        "def pytest_runtest_setup(item):\n"
        "    seen.setdefault('first_test', time.monotonic())\n"
        "def pytest_sessionfinish(session):\n"
        "    open(os.environ['WHEN_OUT'], 'w').write(json.dumps(seen))\n"
    )
    when = tmp_path / "when.json"
    run = SuiteRun(
        "early",
        suite_args("fp8ref", "c4 or c1_", "-p", "when_plugin"),
        env={"WHEN_OUT": str(when)},
        path=(str(tmp_path),),
    )
    result = run_suites([run], tmp_path / "runs")["early"]
    assert result.ret == 0, result.stdout[-3000:]
    seen = json.loads(when.read_text())
    assert seen["child"] < seen["first_test"], f"the probe started after the first test began: {seen}"


def test_no_fork_from_a_process_with_another_thread() -> None:
    """A lock another thread holds at the fork would stay held in the child forever: with a second thread running,
    the training children start as fresh interpreters instead."""
    import threading

    from fp8ref_conformance.kit.forks import can_fork

    assert can_fork() == (threading.active_count() == 1)
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        assert not can_fork()
    finally:
        release.set()
        other.join()


def test_each_child_is_declared_once_by_name() -> None:
    """The children are one registry (``kit.children``), under the names the clause table refers to."""
    from fp8ref_conformance.kit.children import CHILDREN

    names = [child.name for child in CHILDREN]
    assert names == ["no_backend_probe", "te_by_auto_probe", "fsdp2_ranks", "deepspeed_run"]


def test_the_deepspeed_runs_are_those_the_selected_tests_read() -> None:
    """A test says which DeepSpeed runs it reads (``reads``): the plan holds those runs, for its case only, and
    none that needs a function the implementation lacks."""
    from fp8ref_conformance.kit.deepspeed_run import reads, selected_needs

    class Item:
        def __init__(self, runs: tuple[str, ...], params: dict[str, Any]) -> None:
            self.function = reads(*runs)(lambda: None)
            self.callspec = type("Callspec", (), {"params": params})()

    items: list[Any] = [Item(("fp8",), {"case": "2-dict"}), Item(("te",), {}), Item(("te",), {"device": "cuda"})]
    assert selected_needs(items, ()) == {"2-dict": {"fp8", "te"}, "3-path": {"te"}}
    assert selected_needs(items, ("patch_accelerator_for_fp8",)) == {}, "every run needs the patch"
