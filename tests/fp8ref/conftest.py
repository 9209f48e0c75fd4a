"""Isolation for fp8ref's own tests: each test gets the environment, accelerate's singleton state and the
``Accelerator`` class back as they were."""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_ABSENT = object()


def _restore_namespace(target: Any, saved: dict[str, Any]) -> None:
    """Put ``target``'s attributes back as ``saved`` holds them; attributes added since are removed (except
    submodules an import added to a package)."""
    current = vars(target)
    for name in [n for n in current if n not in saved]:
        if not isinstance(current[name], types.ModuleType):
            delattr(target, name)
    for name, value in saved.items():
        if name not in ("__dict__", "__weakref__") and current.get(name, _ABSENT) is not value:
            setattr(target, name, value)


@pytest.fixture(autouse=True)
def _restore_fp8_state() -> Iterator[None]:
    """Each test gets back the environment, accelerate's state singletons, and every attribute of the
    ``Accelerator`` class and of ``accelerate.accelerator`` as they were: fp8ref's patch (installed by
    ``configure_fp8_environment`` too) changes ``__init__``, ``_prepare_ao``, ``fp8_backend``, adds the names of
    ``fp8ref.patch.CLASS_ATTRIBUTES``, and replaces ``accelerate.accelerator.convert_model`` for TE."""
    import accelerate.accelerator as accelerator_module
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    environ = dict(os.environ)
    class_namespace = dict(vars(Accelerator))
    module_namespace = dict(vars(accelerator_module))
    try:
        yield
    finally:
        AcceleratorState._reset_state(True)
        _restore_namespace(Accelerator, class_namespace)
        _restore_namespace(accelerator_module, module_namespace)
        os.environ.clear()
        os.environ.update(environ)


def make_args(**overrides: Any) -> types.SimpleNamespace:
    values: dict[str, Any] = {"fp8": True, "fp8_backend": "torchao", "fp8_enable_fsdp_float8_all_gather": False}
    values.update(overrides)
    return types.SimpleNamespace(**values)


def write_standin_te(directory: Path) -> Path:
    """Write the conformance suite's stand-in Transformer Engine into ``directory`` (high-precision ``te.Linear``,
    an ``fp8_autocast`` that records its arguments in ``transformer_engine.pytorch.AUTOCAST_CALLS``,
    ``transformer_engine.common.recipe`` and installed metadata, so that accelerate takes it for TE).
    The suite owns it: ``fp8ref_conformance.kit.standin_te`` (earlier ``fp8ref_conformance.helpers``)."""
    try:
        from fp8ref_conformance.kit.standin_te import write_standin_te as write
    except ImportError:
        from fp8ref_conformance.helpers import write_standin_te as write
    written: Path = write(directory)
    return written


def _te_modules() -> dict[str, types.ModuleType]:
    return {n: m for n, m in sys.modules.items() if n == "transformer_engine" or n.startswith("transformer_engine.")}


@pytest.fixture
def standin_te(tmp_path: Path) -> Iterator[Path]:
    """The stand-in Transformer Engine on ``sys.path`` for one test (see :func:`write_standin_te`)."""
    directory = write_standin_te(tmp_path / "standin_te")
    saved = _te_modules()
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    try:
        yield directory
    finally:
        sys.path.remove(str(directory))
        for name in _te_modules():
            del sys.modules[name]
        sys.modules.update(saved)
        importlib.invalidate_caches()
