"""C16 DeepSpeed: FP8 through the HF ``Trainer`` under DeepSpeed ZeRO (stages 2 and 3) on the CPU, and verify under
DeepSpeed (C12a, C12d), and Transformer Engine's recipe there (C16d, G5).

LLaMA-Factory ships FP8 with DeepSpeed ZeRO-3 as an example, and passes the DeepSpeed config as the path of a JSON
file. The runs happen in child processes (``children/deepspeed_trainer.py``, ``DS_ACCELERATOR=cpu``), because
DeepSpeed keeps process-wide state that nothing resets (its accelerator, ``deepspeed.comm``, the torch process group):
it ends with the process, so no test after these inherits it. Each process has a free rendezvous port of its own,
is killed with its whole process group when it runs out of time, and gets time in proportion to the runs it makes.

One single-rank process makes, each from a clean slate, the runs the selected tests need: for ZeRO-2 with the
config as a dict, and ZeRO-3 with the config as a JSON path, the FP8 run with the all-gather flag (C16c), the run
without FP8 and the torchao FP8 run (20 steps each on a fixed batch, C16a, C16b, and verify at ``Trainer.__init__``
followed up in ``train()``, C12d), the Transformer Engine run with the suite's stand-in TE (C16d and G5's CPU twin);
and for ZeRO-3 an FP8 run of a Llama with no layer divisible by 16 (C12a, C12d). (Two ranks are not run: C16
does not ask for them, and a second DeepSpeed process on two ranks cost the suite about 30 s of a 2-core machine.)
A run needs only the contract functions it calls; a test whose function the module lacks says ``missing`` before
it looks at a run, and no run is made that no selected test can use. The worker keeps DeepSpeed from
JIT-building its shared-memory collective op (``deepspeed_shm_comm_op``): DeepSpeed then uses plain
``torch.distributed``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .children.deepspeed_trainer import RUN_NEEDS
from .implementation import Implementation
from .kit.capabilities import cuda_fp8_skip_reason, package_skip_reason, real_te_skip_reason
from .kit.early import EarlyStart
from .kit.forks import can_fork
from .kit.messages import names_all_gather_and_deepspeed
from .kit.processes import (
    Child,
    child_environment,
    claim,
    fork_child,
    read_rank_files,
    register,
    single_rank_environment,
    start_module,
)
from .kit.te_recipes import C7_RECIPE, recipe_problems
from .kit.trainer import LOSS_STEPS, NUM_LAYERS, PROJECTIONS, is_te_linear, is_torchao_float8, losses_close, projections
from .kit.verdicts import block_unless, reraise_recorded
from .kit.verify_outcome import Outcome, assert_loud, assert_quiet, outcome_from_dict

CHILD = "deepspeed_trainer"
#: The single-rank cases: ZeRO stage and how the config reaches ``TrainingArguments(deepspeed=...)``.
CASES = ("2-dict", "3-path")
#: The case of the run with no eligible layer (C12a, C12d).
NO_ELIGIBLE_CASE = "3-path"
ALL_GATHER_FLAG = "fp8_enable_fsdp_float8_all_gather"
#: Time for a child: a base (its imports and DeepSpeed's start) and a share per run, on a machine of its own.
BASE_S = 120.0
PER_RUN_S = 45.0
#: The order of the runs in a case.
RUN_ORDER = ("all_gather", "reference", "fp8", "te", "no_eligible")
#: The runs each test reads (by test name); its cases come from its ``case`` parameter, else all of ``CASES``.
RUNS_OF = {
    "test_c16a_zero_trains_with_float8_projections": ("fp8",),
    "test_c16b_zero_loss_tracks_the_run_without_fp8": ("reference", "fp8"),
    "test_c16c_all_gather_flag_under_deepspeed_is_a_clear_error": ("all_gather",),
    "test_c16d_zero_te_forward_runs_with_the_c7_recipe": ("te",),
    "test_g5_deepspeed_te_forward_runs_with_the_c7_recipe": ("te",),
    "test_c12d_deepspeed_trainer_quiet_at_init_and_in_train_with_fp8_layers": ("fp8",),
    "test_c12a_deepspeed_trainer_without_fp8_layer_warns_after_train": ("no_eligible",),
    "test_c12d_deepspeed_trainer_without_fp8_layer_warns_in_train": ("no_eligible",),
}


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


def _start(
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
    process before any test ran (:mod:`.kit.forks`)."""
    env = child_environment(DS_ACCELERATOR=accelerator, **single_rank_environment())
    args = ["--impl", impl_name, "--out", str(out), "--plan", plan, *extra]
    return fork_child(CHILD, args, env, what, out.parent) if fork else start_module(CHILD, args, env, what)


def _plan(needs: dict[str, set[str]]) -> str:
    return ";".join(f"{case}:{','.join(r for r in RUN_ORDER if r in runs)}" for case, runs in sorted(needs.items()))


def _selected_needs(items: Iterable[pytest.Item], missing: tuple[str, ...]) -> dict[str, set[str]]:
    """The runs the selected CPU tests of this module (``items``) need, by case, leaving out runs that need a
    function the implementation lacks (their tests say ``missing``)."""
    needs: dict[str, set[str]] = {}
    runnable = {name for name, functions in RUN_NEEDS.items() if not set(functions) & set(missing)}
    for item in items:
        name = getattr(item, "originalname", None) or item.name
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("device") == "cuda":
            continue
        runs = set(RUNS_OF.get(name, ())) & runnable
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
    return _start(impl_name, out, plan=_plan(needs), what="the DeepSpeed run", extra=extra, fork=fork)


def start_children_early(early: EarlyStart) -> None:
    """The single-rank DeepSpeed run, before the first test (see :mod:`.kit.early`)."""
    needs = _selected_needs(early.items, early.missing)
    if needs and package_skip_reason("deepspeed") is None:
        out = early.temp_dir("c16") / "single.json"
        child = _start_single_rank(early.impl_name, needs, out, early.standin_te_dir(), fork=can_fork())
        register(CHILD, child, out)


@pytest.fixture(scope="module")
def single_rank(
    request: pytest.FixtureRequest, impl: Implementation, impl_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pending]:
    """The one DeepSpeed process the selected CPU tests need (none when they need no run), with time for its
    runs, or the one started early; killed at the end."""
    started = claim(CHILD)
    reason = package_skip_reason("deepspeed")
    if reason:
        if started is not None:
            started[0].stop()
        pytest.skip(reason)
    items = [item for item in request.session.items if getattr(item, "module", None) is request.module]
    needs = _selected_needs(items, impl.missing)
    if started is not None:
        child, out = started
    elif needs:
        out = tmp_path_factory.mktemp("c16") / "single.json"
        child = _start_single_rank(impl_name, needs, out, request.getfixturevalue("standin_te_dir"))
    else:
        child, out = None, tmp_path_factory.mktemp("c16") / "single.json"
    pending = Pending(child, out, 1, _timeout(needs))
    yield pending
    if child is not None:
        child.stop()


def _where(case: str) -> str:
    stage, form = case.split("-")
    return f"ZeRO-{stage} (DeepSpeed config as a {'dict' if form == 'dict' else 'JSON file path'})"


def _ran(run: dict[str, Any], where: str) -> None:
    assert "missing" not in run, f"{where}: the run was not made (missing {run['missing']}): a bug of the suite"
    assert "error" not in run, f"{where}: the training run failed: {run.get('error')}\n{run.get('traceback', '')}"
    assert run["distributed_type"].endswith("DEEPSPEED"), f"{where}: the Trainer did not run DeepSpeed: {run}"


def check_fp8_run(run: dict[str, Any], steps: int, where: str, *, is_fp8: Any = is_torchao_float8) -> None:
    """C16a for one run: DeepSpeed in use, every projection float8, ``lm_head`` not, finite losses, and
    ``verify_fp8_status`` after ``train()`` quiet (the Trainer runs eagerly: the C12e notice is allowed)."""
    reraise_recorded(run)
    _ran(run, where)
    found = projections(run["classes"])
    assert len(found) == len(PROJECTIONS) * NUM_LAYERS, f"{where}: projections found {sorted(found)}"
    not_fp8 = {fqn: cls for fqn, cls in found.items() if not is_fp8(cls)}
    assert not not_fp8, (
        f"{where}: these projections are not float8 after Trainer.train() under DeepSpeed (the Accelerator had "
        f"fp8_enabled={run['fp8_enabled']}): {not_fp8}"
    )
    heads = {fqn: cls for fqn, cls in run["classes"].items() if fqn.rsplit(".", 1)[-1] == "lm_head"}
    assert len(heads) == 1, f"{where}: expected one lm_head, found {heads}"
    assert not any(is_fp8(cls) for cls in heads.values()), f"{where}: lm_head was converted: {heads}"
    losses = run["losses"]
    assert len(losses) == steps and all(math.isfinite(x) for x in losses), f"{where}: losses {losses}"
    assert_quiet(outcome_from_dict(run["verify"]["after"]), f"{where}: FP8 is in effect after train()")


# --------------------------------------------------------------------------- CPU, one rank


@pytest.mark.parametrize("case", CASES)
def test_c16a_zero_trains_with_float8_projections(impl: Implementation, single_rank: Pending, case: str) -> None:
    """C16a: under ZeRO the Trainer trains, every projection is a torchao ``Float8Linear``, ``lm_head`` is not,
    and ``verify_fp8_status`` is quiet."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    check_fp8_run(single_rank.runs(case)["fp8"], LOSS_STEPS, _where(case))


@pytest.mark.parametrize("case", CASES)
def test_c16b_zero_loss_tracks_the_run_without_fp8(impl: Implementation, single_rank: Pending, case: str) -> None:
    """C16b: after 20 steps on a fixed batch the FP8 loss is within 10% of the same run without FP8 (same
    DeepSpeed config, same seed), and the loss went down: the float8 weights really train under ZeRO."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    runs = single_rank.runs(case)
    for label in ("reference", "fp8"):
        run = runs[label]
        reraise_recorded(run)
        assert "error" not in run, f"{_where(case)} {label} run failed: {run.get('error')}\n{run.get('traceback', '')}"
    fp8_projections = [cls for cls in projections(runs["fp8"]["classes"]).values() if is_torchao_float8(cls)]
    block_unless(
        fp8_projections,
        "C16a",
        f"under {_where(case)} the FP8 run has no float8 projection: whether float8 weights train cannot be judged",
    )
    reference_fp8 = {fqn: cls for fqn, cls in runs["reference"]["classes"].items() if is_torchao_float8(cls)}
    assert not reference_fp8, f"the run without FP8 has float8 layers (state leaked between runs): {reference_fp8}"
    problem = losses_close(runs["fp8"]["losses"], runs["reference"]["losses"])
    assert problem is None, f"{_where(case)}: {problem}"


@pytest.mark.parametrize("case", CASES)
def test_c16c_all_gather_flag_under_deepspeed_is_a_clear_error(
    impl: Implementation, single_rank: Pending, case: str
) -> None:
    """C16c: ``fp8_enable_fsdp_float8_all_gather=True`` under DeepSpeed is a ``ValueError`` naming the flag and
    DeepSpeed (in any letter case, in any wording), raised before the first training step from any of the places
    the contract allows (configure, ``create_fp8_kwargs``, the patch, ``Accelerator()``, ``prepare``), not torch's
    "Couldn't swap Float8Linear.weight"."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    run = single_rank.runs(case)["all_gather"]
    reraise_recorded(run)
    where = _where(case)
    assert "error" not in run, f"{where}: the all-gather run failed: {run.get('error')}"
    assert run["raised"], (
        f"{where}: training with {ALL_GATHER_FLAG}=True under DeepSpeed raised nothing "
        f"({run['steps_before_error']} steps ran): the FSDP float8 all-gather was silently dropped or ignored"
    )
    where = f"{where}: {run['type']} raised in {run['phase']}"
    assert run["is_value_error"], f"{where} is not a ValueError: {run['message'][:500]}\n{run['traceback']}"
    assert run["steps_before_error"] == 0, f"{where} after {run['steps_before_error']} training steps"
    assert names_all_gather_and_deepspeed(run["message"]), (
        f"{where}: the message does not name both the flag ({ALL_GATHER_FLAG}) and DeepSpeed: {run['message']}"
    )


def check_te_run(run: dict[str, Any], where: str) -> None:
    """C16d for one run: DeepSpeed in use, every projection a Transformer Engine layer, and every TE layer forward
    in training run inside TE's FP8 autocast with the recipe of C7, judged by its fields."""
    _ran(run, where)
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


@pytest.mark.parametrize("case", CASES)
def test_c16d_zero_te_forward_runs_with_the_c7_recipe(impl: Implementation, single_rank: Pending, case: str) -> None:
    """C16d on the CPU with the suite's stand-in Transformer Engine (high precision; TE's FP8 state records which
    recipe is in effect where each TE layer runs)."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    check_te_run(single_rank.runs(case)["te"], f"{_where(case)}, Transformer Engine (the suite's stand-in)")


# --------------------------------------------------------------------------- verify under DeepSpeed (C12a, C12d)


def _own(outcome: Outcome) -> list[Any]:
    return outcome.own_warnings()


def _no_eligible_run(impl: Implementation, single_rank: Pending) -> dict[str, Any]:
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    run: dict[str, Any] = single_rank.runs(NO_ELIGIBLE_CASE)["no_eligible"]
    where = f"{_where(NO_ELIGIBLE_CASE)}, a Llama with no layer divisible by 16"
    _ran(run, where)
    converted = {fqn: cls for fqn, cls in run["classes"].items() if is_torchao_float8(cls)}
    assert not converted, f"precondition: {where}: layers not divisible by 16 were converted: {converted}"
    assert run["fp8_enabled"], f"precondition: {where}: the Trainer's Accelerator is not in FP8 (see C16a)"
    return run


def test_c12a_deepspeed_trainer_without_fp8_layer_warns_after_train(impl: Implementation, single_rank: Pending) -> None:
    run = _no_eligible_run(impl, single_rank)
    assert_loud(
        outcome_from_dict(run["verify"]["after"]),
        "verify was called after train() under DeepSpeed and the prepared model holds no FP8 layer",
    )


def test_c12d_deepspeed_trainer_without_fp8_layer_warns_in_train(impl: Implementation, single_rank: Pending) -> None:
    run = _no_eligible_run(impl, single_rank)
    assert_quiet(outcome_from_dict(run["verify"]["init"]), "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_loud(
        outcome_from_dict(run["verify"]["train"]),
        "verify was called after Trainer.__init__ under DeepSpeed and train() prepared a model that holds no FP8 layer",
        records=_own,
    )


@pytest.mark.parametrize("case", CASES)
def test_c12d_deepspeed_trainer_quiet_at_init_and_in_train_with_fp8_layers(
    impl: Implementation, single_rank: Pending, case: str
) -> None:
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    run = single_rank.runs(case)["fp8"]
    _ran(run, _where(case))
    assert any(is_torchao_float8(cls) for cls in projections(run["classes"]).values()), "precondition: see C16a"
    assert_quiet(outcome_from_dict(run["verify"]["init"]), "verify ran at the end of Trainer.__init__ with FP8 enabled")
    assert_quiet(
        outcome_from_dict(run["verify"]["train"]), "train() prepared a model that holds FP8 layers", records=_own
    )


# --------------------------------------------------------------------------- GPU


def _cuda_skip_reason() -> str | None:
    return cuda_fp8_skip_reason() or package_skip_reason("deepspeed")


def _cuda_child(impl_name: str, out: Path, plan: str, what: str, *, runs: int) -> Pending:
    child = _start(impl_name, out, plan=plan, what=what, extra=("--cuda",), accelerator="cuda")
    return Pending(child, out, 1, BASE_S + PER_RUN_S * runs)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torchao", "te"])
def test_c16a_cuda_zero3(impl_name: str, impl: Implementation, tmp_path: Path, backend: str) -> None:
    """C16a and C16b on CUDA under ZeRO-3, bf16, with real float8 kernels: torchao ``Float8Linear`` or
    Transformer Engine ``Linear`` projections, ``lm_head`` kept, no verify warning, loss within 10%."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8", "verify_fp8_status")
    reason = _cuda_skip_reason() or (real_te_skip_reason() if backend == "te" else None)
    if reason:
        pytest.skip(reason)
    run_name = "fp8" if backend == "torchao" else "te"
    pending = _cuda_child(
        impl_name, tmp_path / "cuda.json", f"3-path:reference,{run_name}", f"the CUDA ZeRO-3 run ({backend})", runs=2
    )
    runs = pending.runs("3-path")
    where = f"CUDA ZeRO-3 {backend}"
    check_fp8_run(runs[run_name], LOSS_STEPS, where, is_fp8=is_te_linear if backend == "te" else is_torchao_float8)
    problem = losses_close(runs[run_name]["losses"], runs["reference"]["losses"])
    assert problem is None, f"{where}: {problem}"


DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
def test_g5_deepspeed_te_forward_runs_with_the_c7_recipe(
    request: pytest.FixtureRequest, impl_name: str, impl: Implementation, tmp_path: Path, device: str
) -> None:
    """G5: C16d with the real Transformer Engine on CUDA, one process (ZeRO-2 with the config as a dict, ZeRO-3 as a
    JSON path). The CPU twin judges the stand-in's runs of C16d the same way: the conversion and the recipe the
    forward runs with, not FP8 itself."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    if device == "cpu":
        pending: Pending = request.getfixturevalue("single_rank")
    else:
        reason = _cuda_skip_reason() or real_te_skip_reason()
        if reason:
            pytest.skip(reason)
        plan = ";".join(f"{case}:te" for case in CASES)
        pending = _cuda_child(impl_name, tmp_path / "g5.json", plan, "the CUDA Transformer Engine runs", runs=2)
    for case in CASES:
        check_te_run(pending.runs(case)["te"], f"{device}, {_where(case)}, Transformer Engine")
