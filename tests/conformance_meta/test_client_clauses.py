"""The clauses of the real client, LLaMA-Factory's trainer, fail the implementations that break them, and the
suite's verdicts there are the right ones.

- C12e (does it pay: ``torch.compile``): a verify that never names ``torch.compile``, one that names it for compiled
  models too, and one that never looks at the accelerator's dynamo plugin each fail C12e, on the tests of their defect.
- C14b (LLaMA-Factory's call order) and C8g (an Accelerator not in FP8 after configure): a configure that needs the
  patch fails C14b for torchao (where LLaMA-Factory calls no patch) and passes it for TE; a configure that leaves
  accelerate's ``_prepare_ao`` crash fails C8g.
- C16d (Transformer Engine's recipe under DeepSpeed): fp8ref with its recipe dropped there (what an implementation
  that returns ``TERecipeKwargs`` and does nothing more does) fails C16d, naming TE's default amax history (1024).
- Partial implementations in C16 and C17: a missing function is ``missing: <function>``, not a failure in the child,
  and a module without verify is judged on its merits where no verify is needed (C17b, C17c; the DeepSpeed child
  asks the module the same way, :func:`~fp8ref_conformance.kit.trainer.offers`).
- The judgements themselves, without a child: quiet and loud with the C12e notice, verify's outcome as the child
  writes it, C16c's raise sites (``create_fp8_kwargs`` with the run's own arguments) and its message in any wording.

All sessions share one child process (:mod:`.suite_runs`). The C12e broken modules silence fp8ref's own compile
notices for the rest of that process (a logger filter), so they come last.
"""

from __future__ import annotations

import json
import logging
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fp8ref_conformance.children.deepspeed_trainer import refusal
from fp8ref_conformance.kit.logs import LogCapture
from fp8ref_conformance.kit.messages import names_all_gather_and_deepspeed
from fp8ref_conformance.kit.trainer import offers
from fp8ref_conformance.kit.verify_outcome import Outcome, assert_quiet, outcome_from_dict, outcome_to_dict

from .suite_runs import SuiteResult, SuiteRun, run_suites, suite_args

HERE = Path(__file__).resolve().parent
PATHS = (str(HERE / "broken"), str(HERE / "correct"), str(HERE / "partial"))
PATCH, VERIFY = "patch_accelerator_for_fp8", "verify_fp8_status"
C17_PARTIAL = "rank8 and (c17a or c17b_no_adapter or c17c_only)"


@dataclass(frozen=True)
class Case:
    module: str
    select: str
    failed: frozenset[str] = frozenset()
    passed: frozenset[str] = frozenset()
    missing: dict[str, list[str]] = field(default_factory=dict)
    #: Tests (their names without the module, as in the report) that must fail, and that must pass.
    failing: tuple[str, ...] = ()
    passing: tuple[str, ...] = ()
    #: Text the first failure of each failed clause must contain.
    says: dict[str, str] = field(default_factory=dict)


def _c12e(*forms: str) -> tuple[str, ...]:
    return tuple(f"test_c12e_compiled_float8_layers_get_no_notice[{form}]" for form in forms)


EAGER = (
    "test_c12e_eager_float8_layers_get_one_compile_notice",
    "test_c12e_deferred_check_judges_compilation_after_the_next_prepare[eager]",
)
STRUCTURE = ("wrapper-of-the-model", "wrapper-of-an-enclosing-module", "compiled-in-place", "block-compiled-in-place")
PLUGIN = ("dynamo-plugin", "regional-dynamo-plugin")

CASES = [
    Case(
        "fp8broken_configure_leaves_the_crash",
        "c8g",
        failed=frozenset({"C8g"}),
        failing=("test_c8g_accelerator_not_in_fp8_still_prepares_a_model[torchao]",),
        says={"C8g": "'NoneType' object has no attribute 'config'"},
    ),
    Case(
        "fp8broken_configure_needs_the_patch",
        "c14b",
        failed=frozenset({"C14b"}),
        failing=("test_c14b_llamafactory_call_order_converts_projections_cpu[torchao]",),
        passing=("test_c14b_llamafactory_call_order_converts_projections_cpu[te]",),
    ),
    Case(
        "fp8broken_te_recipe_dropped_under_deepspeed",
        "3-path and (c16d or c16c)",
        failed=frozenset({"C16d"}),
        passed=frozenset({"C16c"}),
        says={"C16d": "'amax_history_len': 1024"},
    ),
    Case(
        "fp8partial_no_patch",
        "deepspeed",
        missing={clause: [PATCH] for clause in ("C12a", "C12d", "C16a", "C16b", "C16c", "C16d", "G5/cpu")},
    ),
    Case("fp8partial_no_verify", C17_PARTIAL, passed=frozenset({"C17b", "C17c"}), missing={"C17a": [VERIFY]}),
    Case(
        "fp8broken_compile_never_noticed",
        "(c12e or c12b) and not compiling_at_prepare",
        failed=frozenset({"C12e"}),
        passed=frozenset({"C12b"}),
        failing=(*EAGER, "test_c12e_trainer_running_eagerly_gets_the_notice_after_train"),
        passing=_c12e(*STRUCTURE, *PLUGIN),
        says={"C12e": "torch.compile"},
    ),
    Case(
        "fp8broken_compile_noticed_when_compiled",
        "(c12e or c12b) and not trainer",
        failed=frozenset({"C12e", "C12b"}),
        failing=_c12e(*STRUCTURE, *PLUGIN),
        passing=(*EAGER, "test_c12e_te_layers_never_get_the_notice"),
    ),
    Case(
        "fp8broken_compile_ignores_dynamo_plugin",
        "(c12e or c12b) and not eagerly",
        failed=frozenset({"C12e"}),
        passed=frozenset({"C12b"}),
        failing=(
            *_c12e(*PLUGIN),
            "test_c12e_deferred_check_judges_compilation_after_the_next_prepare[dynamo-plugin]",
            "test_c12e_trainer_compiling_at_prepare_gets_no_notice",
        ),
        passing=(*_c12e(*STRUCTURE), *EAGER),
    ),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteResult]:
    runs = [
        SuiteRun(
            case.module,
            suite_args(case.module, case.select),
            {},
            PATHS,
        )
        for case in CASES
    ]
    return run_suites(runs, tmp_path_factory.mktemp("client-clause-runs"))


def _tests(report: dict[str, Any]) -> dict[str, str]:
    """Outcome of every test of the report, by its name (node id without the module)."""
    return {
        test["nodeid"].rsplit("::", 1)[-1]: test["outcome"]
        for data in report["clauses"].values()
        for test in data["tests"]
    }


@pytest.mark.parametrize("case", CASES, ids=[c.module for c in CASES])
def test_client_clause_verdicts(results: dict[str, SuiteResult], case: Case) -> None:
    result = results[case.module]
    report = result.report
    assert report is not None, f"no report written:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    assert report["implementation"]["module"] == case.module
    clauses = report["clauses"]
    outcomes = {clause: data["outcome"] for clause, data in clauses.items()}
    for clause in sorted(case.failed):
        assert outcomes.get(clause) == "failed", f"{clause} should fail for {case.module}: {outcomes}"
    for clause in sorted(case.passed):
        assert outcomes.get(clause) == "passed", f"{clause} should pass for {case.module}: {clauses.get(clause)}"
    for clause, names in case.missing.items():
        data = clauses.get(clause, {})
        assert data.get("outcome") == "missing", f"{clause} should be missing for {case.module}: {data}"
        assert data["missing"] == names and data["first_failure"] == f"missing: {', '.join(names)}", data
    tests = _tests(report)
    wrong = {name: tests.get(name) for name in case.failing if tests.get(name) != "failed"}
    assert not wrong, f"these tests should fail for {case.module}: {wrong}"
    wrong = {name: tests.get(name) for name in case.passing if tests.get(name) != "passed"}
    assert not wrong, f"these tests should pass for {case.module}: {wrong}"
    for clause, text in case.says.items():
        assert text in (clauses[clause]["first_failure"] or ""), clauses[clause]["first_failure"]
    expected_ret = pytest.ExitCode.TESTS_FAILED if case.failed or case.missing else pytest.ExitCode.OK
    assert result.ret == expected_ret, result.stdout[-2000:]


# --------------------------------------------------------------------------- the judgements, without a child


def _record(message: str, name: str = "myimpl.verify", level: int = logging.WARNING) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"levelno": level, "levelname": logging.getLevelName(level), "name": name, "msg": message}
    )


NOTICE = "FP8 is in effect but runs eagerly: turn torch.compile on (torch_compile=True)"


def test_quiet_allows_one_compile_notice_and_nothing_else() -> None:
    """Quiet (C12b, C12d, C14, C16a, C17a): one C12e notice where the layers run eagerly; none where they run
    compiled (C12b); a library's record naming ``torch.compile`` is not the implementation's notice."""
    notice = Outcome(logs=LogCapture([_record(NOTICE)]))
    assert_quiet(notice, "eager")
    with pytest.raises(AssertionError, match="runs compiled"):
        assert_quiet(notice, "compiled", compiled=True)
    with pytest.raises(AssertionError, match="2 times"):
        assert_quiet(Outcome(logs=LogCapture([_record(NOTICE), _record(NOTICE)])), "eager")
    with pytest.raises(AssertionError, match="warned"):
        assert_quiet(Outcome(logs=LogCapture([_record(NOTICE), _record("FP8 is not in effect")])), "eager")
    torch_record = _record("<enum 'X'> is natively supported by torch.compile", name="torch.utils._pytree")
    assert not Outcome(logs=LogCapture([torch_record])).compile_notices()


def test_loud_needs_more_than_the_compile_notice() -> None:
    """C12a/c/d: the notice says FP8 is in effect and slow; it does not say FP8 is off."""
    assert not Outcome(logs=LogCapture([_record(NOTICE)])).loud()
    assert Outcome(logs=LogCapture([_record(NOTICE), _record("no layer converted: training runs in bf16")])).loud()


def test_an_outcome_survives_the_child_process() -> None:
    """What the DeepSpeed child writes as JSON judges as the outcome it was: records and a deliberate error."""
    outcome = Outcome(logs=LogCapture([_record(NOTICE), _record("info", level=logging.INFO)]))
    outcome.error = RuntimeError("FP8 is not in effect")
    again = outcome_from_dict(json.loads(json.dumps(outcome_to_dict(outcome))))
    assert [r.getMessage() for r in again.compile_notices()] == [NOTICE]
    assert isinstance(again.error, RuntimeError) and again.loud()
    crashed = outcome_from_dict({"records": [], "error": {"type": "FP8SomethingError", "message": "FP8 is off"}})
    assert crashed.loud() and "FP8SomethingError" in crashed.explain_error()


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ("fp8_enable_fsdp_float8_all_gather=True cannot be used with DeepSpeed", True),
        ("ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER=true cannot be combined with a deepspeed_config", True),
        ("enable_fsdp_float8_all_gather is FSDP2-only; DeepSpeedPlugin found", True),
        ("the float8 all-gather does not work with DeepSpeed", False),  # names no flag
        ("fp8_enable_fsdp_float8_all_gather is for FSDP2 only", False),  # names no DeepSpeed
    ],
)
def test_c16c_message_names_the_flag_and_deepspeed_in_any_wording(message: str, names: bool) -> None:
    assert names_all_gather_and_deepspeed(message) is names


def test_c16c_raise_site_create_fp8_kwargs_with_the_runs_own_arguments() -> None:
    """The DeepSpeed child passes the run's arguments through every place C16c allows, ``create_fp8_kwargs`` too;
    a module that refuses only there is seen refusing there (and never reaches the Trainer)."""
    args = types.SimpleNamespace(
        fp8=True, fp8_backend="torchao", fp8_enable_fsdp_float8_all_gather=True, deepspeed="ds_zero3.json"
    )
    calls: list[str] = []

    def create_fp8_kwargs(training_args: Any) -> list[Any]:
        calls.append("create")
        assert training_args is args, "create_fp8_kwargs got other arguments than the run's"
        raise ValueError("enable_fsdp_float8_all_gather: not with deepspeed")

    impl = types.ModuleType("refuses_in_create")
    impl.configure_fp8_environment = lambda training_args: calls.append("configure")  # type: ignore[attr-defined]
    impl.create_fp8_kwargs = create_fp8_kwargs  # type: ignore[attr-defined]
    impl.patch_accelerator_for_fp8 = lambda: calls.append("patch")  # type: ignore[attr-defined]

    def build_trainer() -> Any:
        raise AssertionError("the Trainer was built although create_fp8_kwargs refused")

    record = refusal(impl, args, build_trainer)
    assert calls == ["configure", "create"]
    assert record["raised"] and record["phase"] == "create_fp8_kwargs" and record["is_value_error"], record
    del impl.create_fp8_kwargs  # a module without create_fp8_kwargs goes on to the patch
    assert refusal(impl, args, build_trainer)["phase"] == "Trainer()"


def test_the_training_runs_ask_the_implementation_what_it_offers() -> None:
    """A contract function the module lacks is left out of the shared runs (the tests that need it say
    ``missing``): the suite's view knows what is missing, a plain module (in a child) is asked."""
    plain = types.ModuleType("plain")
    plain.configure_fp8_environment = lambda training_args: None  # type: ignore[attr-defined]
    assert offers(plain, "configure_fp8_environment") and not offers(plain, "verify_fp8_status")
    view = types.SimpleNamespace(missing=("verify_fp8_status",))
    assert offers(view, "configure_fp8_environment") and not offers(view, "verify_fp8_status")
