"""C1 mixed precision, C2 inert when disabled, C3 invalid backend, C4 unavailable backend.

Each test gives the three attributes and the lower-case backend names: objects without an attribute, and names
in another letter case, are C0's (``test_c00_arguments.py``)."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .implementation import Implementation
from .kit.contract import fp8_arguments, no_backend_probe
from .kit.env import env_diff, env_snapshot, fp8_env_prefixes
from .kit.messages import mentions_package, mentions_word
from .kit.processes import run_probe
from .kit.strategies import environments, invalid_backends, suite_settings, valid_backends

# The isolation of the suite is done by hooks, not fixtures; only session fixtures are used here.
PROPERTY = suite_settings()


# --------------------------------------------------------------------------- C1


@pytest.mark.parametrize("backend", ["auto", "torchao", "te"])
def test_c1_fp8_true_gives_fp8(impl: Implementation, backend: str) -> None:
    assert impl.get_fp8_mixed_precision(fp8_arguments(fp8=True, backend=backend)) == "fp8"


@pytest.mark.parametrize("backend", ["auto", "torchao", "te"])
def test_c1_fp8_false_gives_none(impl: Implementation, backend: str) -> None:
    assert impl.get_fp8_mixed_precision(fp8_arguments(fp8=False, backend=backend)) is None


@PROPERTY
@given(fp8=st.booleans(), backend=valid_backends(), all_gather=st.booleans())
def test_c1_property_follows_the_fp8_flag(impl: Implementation, fp8: bool, backend: str, all_gather: bool) -> None:
    expected = "fp8" if fp8 else None
    assert impl.get_fp8_mixed_precision(fp8_arguments(fp8=fp8, backend=backend, all_gather=all_gather)) == expected


# --------------------------------------------------------------------------- C2


@pytest.mark.parametrize("backend", ["auto", "torchao", "te"])
@pytest.mark.parametrize("all_gather", [False, True])
def test_c2_create_returns_empty_list_when_disabled(impl: Implementation, backend: str, all_gather: bool) -> None:
    assert impl.create_fp8_kwargs(fp8_arguments(fp8=False, backend=backend, all_gather=all_gather)) == []


@PROPERTY
@given(env=environments(), backend=valid_backends(), all_gather=st.booleans())
def test_c2_property_configure_leaves_environment_when_disabled(
    impl: Implementation, env: dict[str, str], backend: str, all_gather: bool
) -> None:
    with env_snapshot(env, drop_prefixes=fp8_env_prefixes()) as before:
        impl.configure_fp8_environment(fp8_arguments(fp8=False, backend=backend, all_gather=all_gather))
        changes = env_diff(before, os.environ)
    assert changes == [], f"configure_fp8_environment changed the environment with fp8=False: {changes}"


def _plain_accelerator() -> Any:
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def _fp8_accelerator() -> Any:
    from accelerate import Accelerator

    return Accelerator(cpu=True, mixed_precision="fp8")


@pytest.mark.parametrize(
    "make_acc",
    [lambda: None, lambda: object(), _plain_accelerator, _fp8_accelerator],
    ids=["none", "object", "plain-accelerator", "fp8-accelerator"],
)
@pytest.mark.parametrize("backend", ["auto", "torchao", "te"])
def test_c2_verify_is_quiet_when_disabled(impl: Implementation, make_acc: Any, backend: str) -> None:
    from .kit.logs import capture_logs

    acc = make_acc()
    with capture_logs() as logs:
        impl.verify_fp8_status(acc, fp8_arguments(fp8=False, backend=backend))
    assert not logs.at_least(logging.WARNING), f"verify_fp8_status warned with fp8=False: {logs.describe()}"


# --------------------------------------------------------------------------- C3


def _assert_lists_valid_values(message: str) -> None:
    missing = [v for v in ("auto", "torchao", "te") if not mentions_word(message, v)]
    assert not missing, f"the ValueError message does not list the valid value(s) {missing}: {message!r}"


@pytest.mark.parametrize("backend", ["bogus", "transformer_engine", "ao", ""])
def test_c3_create_rejects_invalid_backend(impl: Implementation, backend: str) -> None:
    with pytest.raises(ValueError) as info:
        impl.create_fp8_kwargs(fp8_arguments(fp8=True, backend=backend))
    _assert_lists_valid_values(str(info.value))


@pytest.mark.parametrize("backend", ["bogus", "transformer_engine", "ao", ""])
def test_c3_configure_rejects_invalid_backend_without_touching_environment(impl: Implementation, backend: str) -> None:
    with env_snapshot(drop_prefixes=fp8_env_prefixes()) as before:
        with pytest.raises(ValueError) as info:
            impl.configure_fp8_environment(fp8_arguments(fp8=True, backend=backend))
        changes = env_diff(before, os.environ)
    _assert_lists_valid_values(str(info.value))
    assert changes == [], f"the environment changed before the ValueError: {changes}"


@PROPERTY
@given(env=environments(), backend=invalid_backends(), all_gather=st.booleans())
def test_c3_property_invalid_backend_raises_value_error_and_keeps_environment(
    impl: Implementation, env: dict[str, str], backend: str, all_gather: bool
) -> None:
    args = fp8_arguments(fp8=True, backend=backend, all_gather=all_gather)
    with pytest.raises(ValueError) as info:
        impl.create_fp8_kwargs(args)
    _assert_lists_valid_values(str(info.value))
    with env_snapshot(env, drop_prefixes=fp8_env_prefixes()) as before:
        with pytest.raises(ValueError) as info:
            impl.configure_fp8_environment(args)
        changes = env_diff(before, os.environ)
    _assert_lists_valid_values(str(info.value))
    assert changes == [], f"the environment changed before the ValueError: {changes}"


# --------------------------------------------------------------------------- C4


@pytest.fixture(scope="module")
def no_backend_results(impl_name: str, impl: Implementation) -> dict[str, dict[str, Any]]:
    """``create_fp8_kwargs`` in a fresh interpreter where neither torchao nor transformer_engine is
    importable (``sys.modules[name] = None`` before anything is imported; see children/probe.py)."""
    impl.require("create_fp8_kwargs")  # the child calls it: a module without it fails here, naming it
    out = run_probe(no_backend_probe(impl_name))
    return {r["id"]: r for r in out["results"]}


def _assert_import_error_naming(result: dict[str, Any], package: str) -> None:
    if result["ok"]:
        returned = result.get("handlers", result.get("result_repr"))
        pytest.fail(f"create_fp8_kwargs returned {returned!r} instead of raising ImportError for {package}")
    assert result["is_import_error"], f"raised {result['exc_type']} (not an ImportError): {result['message']!r}"
    assert mentions_package(result["message"], package), (
        f"the ImportError does not name the package to install ({package}): {result['message']!r}"
    )


@pytest.mark.parametrize("case", ["torchao", "torchao-all-gather"])
def test_c4_torchao_missing_raises_import_error_naming_torchao(
    no_backend_results: dict[str, dict[str, Any]], case: str
) -> None:
    _assert_import_error_naming(no_backend_results[case], "torchao")


def test_c4_auto_with_no_backend_raises_import_error(no_backend_results: dict[str, dict[str, Any]]) -> None:
    result = no_backend_results["auto"]
    if result["ok"]:
        pytest.fail(f"create_fp8_kwargs(auto) returned {result.get('handlers')!r} with no backend installed")
    assert result["is_import_error"], f"raised {result['exc_type']}, not ImportError: {result['message']!r}"
    assert mentions_package(result["message"], "torchao") or mentions_package(
        result["message"], "transformer-engine"
    ), f"the ImportError names neither torchao nor transformer-engine: {result['message']!r}"


def test_c4_te_missing_raises_import_error_naming_transformer_engine(
    no_backend_results: dict[str, dict[str, Any]],
) -> None:
    _assert_import_error_naming(no_backend_results["te"], "transformer-engine")


def test_c4_te_missing_in_this_process(impl: Implementation) -> None:
    """The same check in-process, with ``transformer_engine`` hidden through ``sys.modules``."""
    from .kit.packages import hidden_packages

    with hidden_packages("transformer_engine"):
        try:
            result = impl.create_fp8_kwargs(fp8_arguments(fp8=True, backend="te"))
        except ImportError as exc:
            assert mentions_package(str(exc), "transformer-engine"), (
                f"the ImportError does not name transformer-engine: {exc}"
            )
        else:
            pytest.fail(f"create_fp8_kwargs(te) returned {result!r} where transformer_engine is not importable")
