"""C8 environment contract of ``configure_fp8_environment``, with the three attributes given and the backend names in
lower case (other spellings and missing attributes are C0's): the variables it sets (a-c), what it leaves alone (d),
idempotence (e), an ``Accelerator()`` built afterwards (f), and one that is not in FP8 (g)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .implementation import Implementation
from .kit.contract import ALLOWED_ENV_PREFIXES, fp8_arguments
from .kit.env import env_diff, env_snapshot, fp8_env_prefixes
from .kit.standin_te import standin_te
from .kit.strategies import environments, suite_settings, valid_backends

PROPERTY = suite_settings()
TORCHAO_BACKENDS = ["torchao", "auto"]


def _expected_backend(backend: str) -> str:
    """Resolved backend as accelerate names it; torchao is installed wherever the suite runs."""
    return "TE" if backend == "te" else "AO"


@contextlib.contextmanager
def _maybe_standin(backend: str, directory: Path) -> Iterator[None]:
    """For ``te`` the stand-in transformer_engine is put on the path (recipe construction only)."""
    if backend == "te":
        with standin_te(directory):
            yield
    else:
        yield


def _configure(impl: Implementation, args: Any, env: dict[str, str] | None = None) -> dict[str, str]:
    """Run ``configure_fp8_environment`` from a clean FP8 environment (plus ``env``); return the result."""
    with env_snapshot(env, drop_prefixes=fp8_env_prefixes()):
        impl.configure_fp8_environment(args)
        return dict(os.environ)


# --------------------------------------------------------------------------- a, b, c


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c8a_sets_accelerate_mixed_precision_fp8(impl: Implementation, backend: str) -> None:
    value = _configure(impl, fp8_arguments(fp8=True, backend=backend)).get("ACCELERATE_MIXED_PRECISION")
    assert value == "fp8", f"ACCELERATE_MIXED_PRECISION={value!r}"


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
def test_c8b_sets_accelerate_fp8_backend_to_ao_for_torchao(impl: Implementation, backend: str) -> None:
    env = _configure(impl, fp8_arguments(fp8=True, backend=backend))
    value, seed_value = env.get("ACCELERATE_FP8_BACKEND"), env.get("FP8_BACKEND")
    assert value == "AO", (
        f"ACCELERATE_FP8_BACKEND={value!r} (FP8_BACKEND={seed_value!r}); accelerate reads only ACCELERATE_FP8_BACKEND"
    )


def test_c8b_sets_accelerate_fp8_backend_to_te_for_te(impl: Implementation, standin_te_dir: Path) -> None:
    """Stand-in transformer_engine (recipe construction only; never a G clause)."""
    with standin_te(standin_te_dir):
        value = _configure(impl, fp8_arguments(fp8=True, backend="te")).get("ACCELERATE_FP8_BACKEND")
    assert value == "TE", f"ACCELERATE_FP8_BACKEND={value!r}"


#: What the tests of this module read from the probe of ``auto`` without torchao (the ``te_by_auto`` fixture).
TE_BY_AUTO_NEEDS = "configure_fp8_environment"


@pytest.mark.parametrize("case", ["configure-auto", "configure-auto-all-gather"])
def test_c8b_auto_resolving_to_te_sets_te(te_by_auto: dict[str, dict[str, Any]], case: str) -> None:
    """A fresh interpreter where torchao is not importable and the stand-in TE is (recipe construction
    only; never a G clause): ``auto`` resolves to TE."""
    result = te_by_auto[case]
    assert result["ok"], f"configure_fp8_environment(auto) raised {result.get('exc_type')}: {result.get('message')}"
    assert result["env"].get("ACCELERATE_FP8_BACKEND") == "TE", f"environment changes: {result['env']}"
    assert result["env"].get("ACCELERATE_MIXED_PRECISION") == "fp8", f"environment changes: {result['env']}"


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
@pytest.mark.parametrize("flag", [True, False])
def test_c8c_sets_all_gather_variable_matching_the_flag(impl: Implementation, backend: str, flag: bool) -> None:
    env = _configure(impl, fp8_arguments(fp8=True, backend=backend, all_gather=flag))
    value = env.get("ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER")
    assert value == str(flag).lower(), f"ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER={value!r} with the flag {flag}"


@pytest.mark.parametrize("flag", [True, False])
def test_c8c_overrides_a_preset_all_gather_variable(impl: Implementation, flag: bool) -> None:
    preset = {"ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER": str(not flag).lower()}
    env = _configure(impl, fp8_arguments(fp8=True, backend="torchao", all_gather=flag), preset)
    value = env.get("ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER")
    assert value == str(flag).lower(), f"ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER={value!r} with the flag {flag}"


# --------------------------------------------------------------------------- d, e


def test_c8d_changes_only_fp8_variables(impl: Implementation) -> None:
    preset = {"ACCELERATE_USE_CPU": "true", "ACCELERATE_LOG_LEVEL": "info", "UNRELATED_VAR": "x"}
    with env_snapshot(preset, drop_prefixes=fp8_env_prefixes()) as before:
        impl.configure_fp8_environment(fp8_arguments(fp8=True, backend="torchao"))
        changes = env_diff(before, os.environ)
    bad = [c for c in changes if not c.name.startswith(ALLOWED_ENV_PREFIXES)]
    assert not bad, f"changed variables outside ACCELERATE_MIXED_PRECISION*/ACCELERATE_FP8_*/FP8_*: {bad}"


def test_c8e_second_call_leaves_environment_as_first(impl: Implementation) -> None:
    args = fp8_arguments(fp8=True, backend="torchao", all_gather=True)
    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        impl.configure_fp8_environment(args)
        first = dict(os.environ)
        impl.configure_fp8_environment(args)
        changes = env_diff(first, os.environ)
    assert changes == [], f"the second call changed: {changes}"


@PROPERTY
@given(
    env=environments(),
    backend=valid_backends(),
    all_gather=st.booleans(),
)
def test_c8_property_environment_contract(
    impl: Implementation, standin_te_dir: Path, env: dict[str, str], backend: str, all_gather: bool
) -> None:
    """a-e for generated pre-existing environments (unrelated, other ACCELERATE_* and pre-set FP8
    variables) and each backend. For ``te`` the stand-in TE is on the path (recipe construction only; never a
    G clause)."""
    args = fp8_arguments(fp8=True, backend=backend, all_gather=all_gather)
    with _maybe_standin(backend, standin_te_dir), env_snapshot(env, drop_prefixes=fp8_env_prefixes()) as before:
        impl.configure_fp8_environment(args)
        first = dict(os.environ)
        impl.configure_fp8_environment(args)
        second = dict(os.environ)
    mixed, backend_var, gather = (
        first.get(name)
        for name in (
            "ACCELERATE_MIXED_PRECISION",
            "ACCELERATE_FP8_BACKEND",
            "ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER",
        )
    )
    assert mixed == "fp8", f"C8a: ACCELERATE_MIXED_PRECISION={mixed!r}"
    assert backend_var == _expected_backend(backend), f"C8b: ACCELERATE_FP8_BACKEND={backend_var!r}"
    assert gather == str(all_gather).lower(), f"C8c: ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER={gather!r}"
    bad = [c for c in env_diff(before, first) if not c.name.startswith(ALLOWED_ENV_PREFIXES)]
    assert not bad, f"C8d: changed variables outside the FP8 prefixes: {bad}"
    assert env_diff(first, second) == [], f"C8e: the second call changed {env_diff(first, second)}"


# --------------------------------------------------------------------------- f


def _accelerator_after_configure(impl: Implementation, args: Any) -> tuple[bool, str]:
    import accelerate

    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        impl.configure_fp8_environment(args)
        acc = accelerate.Accelerator()
        return bool(acc.fp8_enabled), str(getattr(acc.fp8_backend, "value", acc.fp8_backend))


@pytest.mark.parametrize("backend", TORCHAO_BACKENDS)
@pytest.mark.parametrize("flag", [False, True])
def test_c8f_accelerator_after_configure_uses_torchao(impl: Implementation, backend: str, flag: bool) -> None:
    enabled, resolved = _accelerator_after_configure(impl, fp8_arguments(fp8=True, backend=backend, all_gather=flag))
    assert enabled, "Accelerator() created after configure_fp8_environment has fp8_enabled False"
    assert resolved == "AO", f"Accelerator().fp8_backend is {resolved}, expected AO"


def test_c8f_accelerator_after_configure_uses_te(impl: Implementation, standin_te_dir: Path) -> None:
    """Stand-in transformer_engine (recipe construction only; never a G clause)."""
    with standin_te(standin_te_dir):
        enabled, resolved = _accelerator_after_configure(impl, fp8_arguments(fp8=True, backend="te"))
    assert enabled, "Accelerator() created after configure_fp8_environment has fp8_enabled False"
    assert resolved == "TE", f"Accelerator().fp8_backend is {resolved}, expected TE"


# --------------------------------------------------------------------------- g


@pytest.mark.parametrize("backend", ["torchao", "te"])
def test_c8g_accelerator_not_in_fp8_still_prepares_a_model(
    impl: Implementation, standin_te_dir: Path, backend: str
) -> None:
    """After ``configure_fp8_environment(a)``, ``Accelerator(mixed_precision="no")`` (what the HF Trainer builds from
    arguments made before the call) prepares a model and its optimizer without error. accelerate 1.15 reads
    ``ACCELERATE_FP8_BACKEND`` even without an FP8 handler, and ``prepare`` then fails in ``_prepare_ao``
    (``'NoneType' object has no attribute 'config'``). Whether the implementation turns that Accelerator to FP8 or
    leaves it in high precision is its choice; the model and optimizer go together, as Transformer Engine needs.
    For ``te`` the stand-in TE is on the path (high precision; never a G clause)."""
    import accelerate
    import torch

    from .kit.models import mixed_model

    with _maybe_standin(backend, standin_te_dir), env_snapshot(drop_prefixes=fp8_env_prefixes()):
        impl.configure_fp8_environment(fp8_arguments(fp8=True, backend=backend))
        acc = accelerate.Accelerator(mixed_precision="no")
        model = mixed_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        try:
            acc.prepare(model, optimizer)
        except Exception as exc:  # the clause's failure, reported with what was going on
            pytest.fail(
                f"after configure_fp8_environment({backend}), Accelerator(mixed_precision='no').prepare(model, "
                f"optimizer) raised {type(exc).__name__}: {exc} (fp8_enabled={acc.fp8_enabled}, "
                f"fp8_backend={getattr(acc.fp8_backend, 'value', acc.fp8_backend)})",
                pytrace=False,
            )
