"""Fixtures and isolation of the conformance suite's own tests.

They live here, not in the ``pytest11`` plugin, because pytest applies a ``conftest.py`` only to the
tests of its own folder: installing fp8ref then changes nothing in another project's test session.
The plugin keeps only what must be global (command-line options, the clause report).

- the ``gpu`` marker;
- ``impl``: the implementation under test (``--fp8-impl``), as a view that fails a test with
  ``missing: <function>`` when the test uses a contract function the module does not offer;
- isolation around every test: ``os.environ``, ``sys.path``, accelerate's process-wide state and the
  ``Accelerator`` class (an implementation's ``patch_accelerator_for_fp8`` patches it) are put back
  afterwards, so results do not depend on the order of tests.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from .helpers import CONTRACT_FUNCTIONS, restore_environ

#: The plugin's name in pytest's plugin manager (the ``pytest11`` entry point of fp8ref).
PLUGIN_NAME = "fp8ref_conformance"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device of compute capability >= 8.9; skipped with the reason elsewhere"
    )


def _plugin(config: pytest.Config) -> Any:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        raise pytest.UsageError(
            f"the FP8 conformance suite needs its pytest plugin {PLUGIN_NAME!r}, which is not loaded: "
            f"install fp8ref (pip install 'fp8ref[test]') and do not block it with -p no:{PLUGIN_NAME}"
        )
    return plugin


# --------------------------------------------------------------------------- the implementation


class Implementation:
    """The module under test, seen through the contract: attribute access passes through, except that
    a contract function the module does not offer fails the test at once with ``missing: <name>``, so
    that a partial implementation is judged clause by clause (a clause that never calls the missing
    function is judged on its merits)."""

    def __init__(self, module: types.ModuleType) -> None:
        self.__dict__["_module"] = module
        self.__dict__["missing"] = tuple(f for f in CONTRACT_FUNCTIONS if not callable(getattr(module, f, None)))

    @property
    def module(self) -> types.ModuleType:
        module: types.ModuleType = self.__dict__["_module"]
        return module

    def require(self, *names: str) -> None:
        """Fail the test with ``missing: ...`` unless the module offers every one of ``names`` (for
        checks that reach the implementation only in a child process)."""
        absent = [name for name in names if name in self.missing]
        if absent:
            pytest.fail(f"missing: {', '.join(absent)}", pytrace=False)

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__["missing"]:
            pytest.fail(f"missing: {name}", pytrace=False)
        return getattr(self.__dict__["_module"], name)

    def __repr__(self) -> str:
        return f"<implementation {self.module.__name__}>"


@pytest.fixture(scope="session")
def impl_name(pytestconfig: pytest.Config) -> str:
    """The dotted name of the implementation under test."""
    return str(_plugin(pytestconfig).impl_name_of(pytestconfig))


@pytest.fixture(scope="session")
def impl(impl_name: str) -> Implementation:
    """The implementation under test (see :class:`Implementation`)."""
    error: str | None = None
    try:
        module = importlib.import_module(impl_name)
    except Exception as exc:
        error = f"cannot import the implementation {impl_name!r}: {type(exc).__name__}: {exc}"
    if error is not None:
        pytest.fail(error, pytrace=False)
    return Implementation(module)


@pytest.fixture(scope="session")
def standin_te_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the stand-in ``transformer_engine`` (not on ``sys.path``: tests put it there
    with :func:`helpers.standin_te`). It only lets accelerate build TE recipes on a machine without TE;
    it never serves a G clause."""
    from .helpers import write_standin_te

    return write_standin_te(tmp_path_factory.mktemp("standin_te"))


# --------------------------------------------------------------------------- isolation


#: Packages that log a WARNING once, when first imported (DeepSpeed: "Setting accelerator to CPU"). An
#: implementation's verify may import them through accelerate; imported before any test, their one-time
#: message is not taken for the warning of whichever test happened to import them first.
_NOISY_ON_FIRST_IMPORT = ("deepspeed",)


@pytest.fixture(scope="session", autouse=True)
def _import_noisy_packages_first() -> None:
    import importlib.util
    import logging

    for name in _NOISY_ON_FIRST_IMPORT:
        if importlib.util.find_spec(name) is None:
            continue
        root = logging.getLogger()
        level = root.level
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken optional package is the business of the clauses that need it
            logging.getLogger(__name__).info("importing %s failed: %s", name, exc)
        finally:
            root.setLevel(level)


#: Modules whose namespaces an implementation's patch may change (Accelerator, convert_model, ...).
_PATCHABLE_MODULES = (
    "accelerate",
    "accelerate.accelerator",
    "accelerate.utils",
    "accelerate.utils.ao",
    "accelerate.utils.transformer_engine",
)

_ABSENT = object()
_SAVED = pytest.StashKey[dict[str, Any]]()


def accelerate_snapshot() -> dict[str, Any]:
    import accelerate.accelerator

    modules = {name: importlib.import_module(name) for name in _PATCHABLE_MODULES}
    cls = accelerate.accelerator.Accelerator
    return {
        "class": cls,
        "class_dict": dict(vars(cls)),
        "modules": {name: (mod, dict(vars(mod))) for name, mod in modules.items()},
    }


def _restore_namespace(target: Any, original: dict[str, Any]) -> None:
    """Put back what ``target``'s namespace held; names added since are removed, except submodules
    that an import added to a package (they belong to ``sys.modules`` too)."""
    current = vars(target)
    for name in [n for n in current if n not in original]:
        if not isinstance(current[name], types.ModuleType):
            delattr(target, name)
    for name, value in original.items():
        if name in ("__dict__", "__weakref__"):
            continue
        if current.get(name, _ABSENT) is not value:
            setattr(target, name, value)


def restore_accelerate(saved: dict[str, Any]) -> None:
    for module, namespace in saved["modules"].values():
        _restore_namespace(module, namespace)
    _restore_namespace(saved["class"], saved["class_dict"])
    _reset_accelerate_state()


def _reset_accelerate_state() -> None:
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    PartialState._reset_state()
    GradientState._reset_state()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _reset_accelerate_state()
    item.stash[_SAVED] = {
        "environ": dict(os.environ),
        "sys_path": list(sys.path),
        "accelerate": accelerate_snapshot(),
    }
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    saved = item.stash.get(_SAVED, None)
    if saved is not None:
        restore_environ(saved["environ"])
        sys.path[:] = saved["sys_path"]
        restore_accelerate(saved["accelerate"])
