"""The DeepSpeed child (``children/deepspeed_trainer.py``) as the tests see it: which runs the selected tests need,
one single-rank process that makes them, and what a test reads of its results.

The child is declared in :mod:`.children` as ``deepspeed_run``; the session fixture of that name (C16, and C12 and
G5 under DeepSpeed) claims the process started at the end of collection, or starts it at its first use. A test says
which runs it reads with :func:`reads`; its cases come from its ``case`` parameter,
else all of :data:`CASES`. A run needs only the contract functions it calls (``RUN_NEEDS``): no run is made that a
function the implementation lacks would keep from running, and no run that no selected test reads.

One process for every run: DeepSpeed keeps process-wide state that nothing resets, and a second DeepSpeed process
(two ranks, say) cost the suite about 30 s of a 2-core machine. It gets time in proportion to its runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..children.deepspeed_trainer import RUN_NEEDS
from .capabilities import cuda_fp8_skip_reason, package_skip_reason
from .early import EarlyStart
from .forks import can_fork
from .processes import Child, child_environment, claim, fork_child, read_rank_files, register, single_rank_environment
from .processes import start_module as start_child_module
from .te_recipes import C7_RECIPE, recipe_problems
from .trainer import NUM_LAYERS, PROJECTIONS, is_te_linear, projections

#: The name under which the early process is registered and claimed (see :mod:`.children`).
NAME = "deepspeed_run"
CHILD = "deepspeed_trainer"
#: The single-rank cases: ZeRO stage and how the config reaches ``TrainingArguments(deepspeed=...)``.
CASES = ("2-dict", "3-path")
#: The case of the run with no eligible layer (C12a, C12d).
NO_ELIGIBLE_CASE = "3-path"
#: Time for a child: a base (its imports and DeepSpeed's start) and a share per run, on a machine of its own.
BASE_S = 120.0
PER_RUN_S = 45.0
#: The order of the runs in a case.
RUN_ORDER = ("all_gather", "reference", "fp8", "te", "no_eligible")
#: The attribute :func:`reads` sets on a test function.
ATTRIBUTE = "deepspeed_runs"
TestFunction = TypeVar("TestFunction", bound=Callable[..., None])


def reads(*runs: str) -> Callable[[TestFunction], TestFunction]:
    """Decorate a test with the runs of the DeepSpeed child it reads (a subset of :data:`RUN_ORDER`). An attribute
    of the function, not a marker: the suite registers no marker that a session importing it must know."""
    unknown = set(runs) - set(RUN_ORDER)
    assert not unknown, f"no such DeepSpeed run: {sorted(unknown)}"

    def decorate(test: TestFunction) -> TestFunction:
        setattr(test, ATTRIBUTE, runs)
        return test

    return decorate


def runs_read_by(item: pytest.Item) -> tuple[str, ...]:
    """The runs a collected test reads (:func:`reads`); none for a test that reads none."""
    runs: tuple[str, ...] = getattr(getattr(item, "function", None), ATTRIBUTE, ())
    return runs


@dataclass
class Pending:
    """A started child whose results are read at the first test that needs them."""

    child: Child | None
    out: Path
    nproc: int
    timeout: float
    _raw: dict[str, Any] | None = field(default=None, repr=False)

    def ranks(self) -> dict[int, dict[str, Any]]:
        """The results of every rank (waiting for the child, killing its group on timeout)."""
        assert self.child is not None, "no DeepSpeed run was started for this test (a bug of the suite)"
        if self._raw is None:
            code, output = self.child.wait(self.timeout)
            ranks = read_rank_files(self.out.parent, self.out.name)
            self._raw = {
                "code": code,
                "output": output,
                "ranks": ranks,
                "seconds": time.monotonic() - self.child.started,
            }
        return _ok(self._raw, self.nproc)

    def runs(self, case: str, rank: int = 0) -> dict[str, Any]:
        stages: dict[str, dict[str, Any]] = self.ranks()[rank]["stages"]
        return stages[case]


def _ok(run: dict[str, Any], nproc: int) -> dict[int, dict[str, Any]]:
    ranks: dict[int, dict[str, Any]] = run["ranks"]
    errors = {rank: f"{data['error']}\n{data.get('traceback', '')}" for rank, data in ranks.items() if "error" in data}
    assert not errors, f"worker failed: {errors}"
    assert run["code"] == 0, f"the DeepSpeed worker exited with {run['code']}:\n{run['output'][-4000:]}"
    assert sorted(ranks) == list(range(nproc)), f"expected results from ranks 0..{nproc - 1}, got {sorted(ranks)}"
    return ranks


def start(
    impl_name: str,
    out: Path,
    *,
    plan: str,
    what: str,
    extra: tuple[str, ...] = (),
    accelerator: str = "cpu",
    fork: bool = False,
) -> Child:
    """The DeepSpeed child as rank 0 of 1 (its own store binds a port the system picks); ``fork``: forked from this
    process before any test ran (:mod:`.forks`)."""
    env = child_environment(DS_ACCELERATOR=accelerator, **single_rank_environment())
    args = ["--impl", impl_name, "--out", str(out), "--plan", plan, *extra]
    return fork_child(CHILD, args, env, what, out.parent) if fork else start_child_module(CHILD, args, env, what)


def _plan(needs: dict[str, set[str]]) -> str:
    return ";".join(f"{case}:{','.join(r for r in RUN_ORDER if r in runs)}" for case, runs in sorted(needs.items()))


def selected_needs(items: Iterable[pytest.Item], missing: tuple[str, ...]) -> dict[str, set[str]]:
    """The runs the selected CPU tests (``items``) read, by case, leaving out runs that need a function the
    implementation lacks (their tests say ``missing``)."""
    needs: dict[str, set[str]] = {}
    runnable = {name for name, functions in RUN_NEEDS.items() if not set(functions) & set(missing)}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("device") == "cuda":
            continue
        runs = set(runs_read_by(item)) & runnable
        if not runs:  # a test that reads no DeepSpeed run (the session may hold any tests, with any parameters)
            continue
        if "reference" in runs and "fp8" not in runs:
            runs.discard("reference")
        cases = [params["case"]] if "case" in params else [NO_ELIGIBLE_CASE] if "no_eligible" in runs else CASES
        for case in cases:
            needs.setdefault(case, set()).update(runs)
    return {case: runs for case, runs in needs.items() if runs}


def _timeout(needs: dict[str, set[str]]) -> float:
    return BASE_S + PER_RUN_S * sum(len(runs) for runs in needs.values())


def _start_single_rank(
    impl_name: str, needs: dict[str, set[str]], out: Path, standin: Path, *, fork: bool = False
) -> Child:
    extra = ("--standin-te", str(standin))
    return start(impl_name, out, plan=_plan(needs), what="the DeepSpeed run", extra=extra, fork=fork)


def start_early(early: EarlyStart) -> None:
    """The single-rank DeepSpeed run, before the first test (see :mod:`.early`)."""
    needs = selected_needs(early.items, early.missing)
    if needs and package_skip_reason("deepspeed") is None:
        out = early.temp_dir("c16") / "single.json"
        child = _start_single_rank(early.impl_name, needs, out, early.standin_te_dir(), fork=can_fork())
        register(NAME, child, out)


def single_rank_run(
    request: pytest.FixtureRequest, missing: tuple[str, ...], impl_name: str, temp: pytest.TempPathFactory
) -> Iterator[Pending]:
    """The one DeepSpeed process the selected CPU tests need (none when they need no run), with time for its
    runs, or the one started early; killed at the end (the ``deepspeed_run`` fixture)."""
    started = claim(NAME)
    reason = package_skip_reason("deepspeed")
    if reason:
        if started is not None:
            started[0].stop()
        pytest.skip(reason)
    needs = selected_needs(request.session.items, missing)
    if started is not None:
        child, out = started
    elif needs:
        out = temp.mktemp("c16") / "single.json"
        child = _start_single_rank(impl_name, needs, out, request.getfixturevalue("standin_te_dir"))
    else:
        child, out = None, temp.mktemp("c16") / "single.json"
    yield Pending(child, out, 1, _timeout(needs))
    if child is not None:
        child.stop()


def cuda_run(impl_name: str, out: Path, plan: str, what: str, *, runs: int) -> Pending:
    """A DeepSpeed child on CUDA for one test (the GPU halves of C16a and G5)."""
    child = start(impl_name, out, plan=plan, what=what, extra=("--cuda",), accelerator="cuda")
    return Pending(child, out, 1, BASE_S + PER_RUN_S * runs)


def cuda_skip_reason() -> str | None:
    """Why the CUDA DeepSpeed runs cannot run here (``None`` where they can)."""
    return cuda_fp8_skip_reason() or package_skip_reason("deepspeed")


def case_label(case: str) -> str:
    stage, form = case.split("-")
    return f"ZeRO-{stage} (DeepSpeed config as a {'dict' if form == 'dict' else 'JSON file path'})"


def assert_ran(run: dict[str, Any], where: str) -> None:
    """The run was made, did not fail, and the Trainer ran DeepSpeed."""
    assert "missing" not in run, f"{where}: the run was not made (missing {run['missing']}): a bug of the suite"
    assert "error" not in run, f"{where}: the training run failed: {run.get('error')}\n{run.get('traceback', '')}"
    assert run["distributed_type"].endswith("DEEPSPEED"), f"{where}: the Trainer did not run DeepSpeed: {run}"


def check_te_run(run: dict[str, Any], where: str) -> None:
    """C16d (and G5) for one run: DeepSpeed in use, every projection a Transformer Engine layer, and every TE layer
    forward in training run inside TE's FP8 autocast with the recipe of C7, judged by its fields."""
    assert_ran(run, where)
    found = projections(run["classes"])
    assert len(found) == len(PROJECTIONS) * NUM_LAYERS, f"{where}: projections found {sorted(found)}"
    not_te = {fqn: cls for fqn, cls in found.items() if not is_te_linear(cls)}
    assert not not_te, f"{where}: these projections are not Transformer Engine layers under DeepSpeed: {not_te}"
    problems = list(recipe_problems(run["te_forwards"], C7_RECIPE))
    assert not problems, (
        f"{where}: {'; '.join(problems)}. The forward must run with the recipe of C7 (accelerate's DeepSpeed path "
        "wraps it with fp8_recipe_handler only, the deprecated FP8RecipeKwargs: a TERecipeKwargs is dropped there, "
        "and TE's default recipe runs)"
    )
