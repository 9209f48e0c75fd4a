"""Scenarios the suite once never built (issue 23), each pinned by a broken implementation that passed the suite
before and fails it now on the clause named, and the pieces of the suite that could give the wrong verdict.

The broken modules are in ``broken/``: fp8ref with one defect, the defect of a verify from ``broken/_verify_kit.py``
or of a configure and patch from ``broken/_patch_kit.py`` where the function itself is the broken one (so that the
defect stays the one named whatever fp8ref's own functions become). They share one child process
(:mod:`suite_runs`), one pytest session each, restricted with ``-k`` to the tests concerned.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest

from .suite_runs import SuiteResult, SuiteRun, run_suites
from .test_broken_implementations import CORRECT_DIR, Broken, runs_of, session_of

VERIFY = "c12a or c12d and not trainer"
TE_VERIFY = "c12a_warns_when_no_te or c12b_quiet_when_te or c12d_te"
CASES = [
    # C12 on Transformer Engine layers (the stand-in TE, on the CPU).
    Broken(
        "fp8broken_verify_counts_only_torchao",
        TE_VERIFY,
        frozenset({"C12b", "C12d"}),
        frozenset({"C12a"}),
    ),
    Broken(
        "fp8broken_verify_trusts_te_backend",
        TE_VERIFY,
        frozenset({"C12a", "C12d"}),
        frozenset({"C12b"}),
    ),
    # C12c: some layers emulate; the user converted the emulating layers.
    Broken("fp8broken_verify_all_must_emulate", "c12a or c12c", frozenset({"C12c"}), frozenset({"C12a"})),
    Broken("fp8broken_verify_emulation_by_handler", "c12a or c12c", frozenset({"C12c"}), frozenset({"C12a"})),
    # C12d: two verifies before prepare; two accelerators; a check left pending.
    Broken("fp8broken_verify_second_call_cancels", VERIFY, frozenset({"C12d"}), frozenset({"C12a"})),
    Broken("fp8broken_verify_one_pending_slot", VERIFY, frozenset({"C12d"}), frozenset({"C12a"})),
    # C13: handlers in a tuple; an explicit handler kept unchanged.
    Broken("fp8broken_patch_tuple_ignored", "c13a or c13b", frozenset({"C13a"}), frozenset({"C13b"})),
    Broken("fp8broken_patch_tuple_duplicates", "c13a or c13b", frozenset({"C13b"}), frozenset({"C13a"})),
    Broken("fp8broken_patch_retunes_explicit_handler", "c13a or c13b", frozenset({"C13b"}), frozenset({"C13a"})),
    # Two-sided TE conversion (G2, G3, C13a), and G4's device check on the CPU twin.
    Broken(
        "fp8broken_te_converts_heads",
        "c13a_te or test_g2 or test_g3",
        frozenset({"C13a", "G2/cpu", "G3/cpu"}),
        frozenset(),
    ),
    Broken("fp8broken_converts_after_prepare", "test_g2 or test_g4", frozenset({"G4/cpu"}), frozenset({"G2/cpu"})),
    # C9 names in other letter cases; the tensorwise handler's filter by the C9 and C17b rules.
    Broken(
        "fp8broken_filter_ignores_case",
        "c9 and not property",
        frozenset({"C9d"}),
        frozenset({"C9a", "C9b", "C9c", "C9e", "C9f"}),
    ),
    Broken(
        "fp8broken_tensorwise_filter_sizes_only",
        "c9a or c9c or c17b_filter",
        frozenset({"C9c", "C17b"}),
        frozenset({"C9a"}),
    ),
]

#: A correct implementation run from a shell that has FP8 set for accelerate: the bare ``Accelerator()`` tests
#: must build an accelerator without FP8 all the same.
DIRTY_SHELL = {"ACCELERATE_MIXED_PRECISION": "fp8", "ACCELERATE_FP8_BACKEND": "AO", "FP8_BACKEND": "torchao"}
DIRTY_SHELL_SELECT = "c12a_warns_when_accelerator_has_fp8_disabled or c12d_fp8_disabled or c12d_check_stays"


@pytest.fixture(scope="module")  # one batch per module: run with --dist loadfile under pytest-xdist
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteResult]:
    runs = runs_of(CASES)
    args, _ = session_of("fp8alt_minimal", DIRTY_SHELL_SELECT, via_env=False)
    runs.append(SuiteRun("dirty-shell", args, dict(DIRTY_SHELL), (str(CORRECT_DIR),)))
    return run_suites(runs, tmp_path_factory.mktemp("blind-spot-runs"))


def _outcomes(result: SuiteResult) -> dict[str, Any]:
    assert result.report is not None, f"no report written:\n{result.stdout[-3000:]}"
    return {clause: data["outcome"] for clause, data in result.report["clauses"].items()}


@pytest.mark.parametrize("case", CASES, ids=[c.module for c in CASES])
def test_suite_fails_broken_implementation_on_its_clause(results: dict[str, SuiteResult], case: Broken) -> None:
    result = results[case.module]
    outcomes = _outcomes(result)
    assert result.report is not None and result.report["implementation"]["module"] == case.module
    for clause in sorted(case.must_fail):
        assert outcomes.get(clause) == "failed", f"{clause} should fail for {case.module}: {outcomes}"
        assert result.report["clauses"][clause]["first_failure"], "a failed clause names its first failure"
    for clause in sorted(case.must_pass):
        assert outcomes.get(clause) == "passed", f"{clause} should pass for {case.module}: {outcomes}"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_shell_with_fp8_variables_decides_nothing(results: dict[str, SuiteResult]) -> None:
    """Tests that build a bare ``Accelerator()`` start from a clean FP8 environment, whatever the caller exported."""
    result = results["dirty-shell"]
    outcomes = _outcomes(result)
    assert outcomes and set(outcomes.values()) == {"passed"}, outcomes
    assert result.ret == pytest.ExitCode.OK


# --------------------------------------------------------------------------- flaky pieces, without a child suite


def _settings_of(test: ast.FunctionDef, module: ast.Module) -> list[str]:
    """How each decorator of ``test`` other than ``@given`` makes its settings: a call's name, or the call a
    module-level name is bound to (``PROPERTY = suite_settings()``)."""
    bound = {
        target.id: node.value
        for node in module.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    made = []
    for decorator in test.decorator_list:
        call = bound.get(decorator.id) if isinstance(decorator, ast.Name) else decorator
        if isinstance(call, ast.Call) and ast.unparse(call.func) not in ("given", "pytest.mark.parametrize"):
            made.append(ast.unparse(call))
    return made


def test_every_property_test_uses_the_suite_settings() -> None:
    """No property test carries hypothesis settings of its own (a deadline, random examples, another count): each
    is decorated with :func:`suite_settings` and nothing else, so that CI runs the same examples every time."""
    import fp8ref_conformance

    found: dict[str, list[str]] = {}
    for path in sorted(Path(fp8ref_conformance.__file__).parent.glob("test_*.py")):
        module = ast.parse(path.read_text())
        for node in ast.walk(module):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and ast.unparse(d.func) == "given" for d in node.decorator_list
            ):
                found[node.name] = _settings_of(node, module)
    assert "test_c17b_property_adapter_component_anywhere_is_rejected" in found, sorted(found)
    wrong = {name: made for name, made in found.items() if made != ["suite_settings()"]}
    assert not wrong, f"property tests with settings other than suite_settings(): {wrong}"


def test_children_choose_no_port_in_advance() -> None:
    """A port found free and bound later by a child can be taken in between: the launcher, or the one rank's own
    store, binds port 0 instead."""
    from fp8ref_conformance.kit import processes

    command = processes.torchrun_command(2, "some.module", ["--x"])
    assert "--master-port" not in command and not hasattr(processes, "free_port")
    assert command[command.index("--rdzv-endpoint") + 1].endswith(":0")
    assert command[command.index("--rdzv-backend") + 1] == "c10d"
    assert processes.single_rank_environment()["MASTER_PORT"] == "0"
    os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    try:
        assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE" not in processes.child_environment()
    finally:
        del os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"]
