"""The pieces of the suite that could give the wrong verdict, and a shell with FP8 variables exported.

The scenarios the suite once never built (issue 23) are pinned by broken implementations in ``broken/`` (fp8ref
with one defect, the defect of a verify from ``broken/_verify_kit.py`` or of a configure and patch from
``broken/_patch_kit.py``), each of which declares the clause it fails (``EXPECTED``, judged by
``test_broken_implementations.py``).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from .expectations import CORRECT_DIR, session_of
from .suite_runs import SuiteResult, SuiteRun, run_suites

#: A correct implementation run from a shell that has FP8 set for accelerate: the bare ``Accelerator()`` tests
#: must build an accelerator without FP8 all the same.
DIRTY_SHELL = {"ACCELERATE_MIXED_PRECISION": "fp8", "ACCELERATE_FP8_BACKEND": "AO", "FP8_BACKEND": "torchao"}
DIRTY_SHELL_SELECT = "c12a_warns_when_accelerator_has_fp8_disabled or c12d_fp8_disabled or c12d_check_stays"


@pytest.fixture(scope="module")
def dirty_shell(tmp_path_factory: pytest.TempPathFactory) -> SuiteResult:
    args, _ = session_of("fp8alt_minimal", DIRTY_SHELL_SELECT, via_env=False)
    run = SuiteRun("dirty-shell", args, dict(DIRTY_SHELL), (str(CORRECT_DIR),))
    return run_suites([run], tmp_path_factory.mktemp("dirty-shell-run"))["dirty-shell"]


def test_a_shell_with_fp8_variables_decides_nothing(dirty_shell: SuiteResult) -> None:
    """Tests that build a bare ``Accelerator()`` start from a clean FP8 environment, whatever the caller exported."""
    result = dirty_shell
    assert result.report is not None, f"no report written:\n{result.stdout[-3000:]}"
    outcomes = {clause: data["outcome"] for clause, data in result.report["clauses"].items()}
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
