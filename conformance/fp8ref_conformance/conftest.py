"""Fixtures and isolation of the conformance suite's own tests.

They live here, not in the ``pytest11`` plugin, because pytest applies a ``conftest.py`` only to the
tests of its own folder: installing fp8ref then changes nothing in another project's test session.
The plugin keeps only what must be global (command-line options, the clause report).

- the ``gpu`` marker;
- ``impl``: the implementation under test (``--fp8-impl``), as a view that fails a test as ``missing``
  when the test uses a contract function the module does not offer (see :mod:`.implementation`);
- isolation around every test (:mod:`.kit.isolation`): every test starts without the caller's ``ACCELERATE_*`` and
  ``FP8_*`` variables (a bare ``Accelerator()`` would read them), and ``os.environ``, ``sys.path``, accelerate's
  process-wide state and the namespaces an implementation's patch changes are put back afterwards, so results
  depend neither on the order of tests nor on the shell they run in.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from .implementation import Implementation
from .kit import children, early
from .kit.contract import fp8_arguments, te_by_auto_probe
from .kit.deepspeed_run import Pending, single_rank_run
from .kit.isolation import Snapshot, drop_fp8_variables, reset_accelerate_state, snapshot
from .kit.processes import run_probe
from .plugin import implementation_of


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device of compute capability >= 8.9; skipped with the reason elsewhere"
    )


# --------------------------------------------------------------------------- the implementation


@pytest.fixture(scope="session")
def impl_name(pytestconfig: pytest.Config) -> str:
    """The dotted name of the implementation under test."""
    return implementation_of(pytestconfig).name


@pytest.fixture(scope="session")
def impl(pytestconfig: pytest.Config) -> Implementation:
    """The implementation under test (see :class:`.implementation.Implementation`)."""
    info = implementation_of(pytestconfig)
    if info.module is None:
        pytest.fail(f"cannot import the implementation {info.name!r}: {info.error}", pytrace=False)
    return Implementation(info)


#: The torchao recipes whose handler's filter C9 and C17b judge: the value is the all-gather flag that selects it.
FILTER_RECIPES = {"rowwise": False, "tensorwise": True}


@pytest.fixture(scope="session", params=sorted(FILTER_RECIPES))
def module_filter(impl: Implementation, request: pytest.FixtureRequest) -> Callable[[nn.Module, str], Any]:
    """The ``module_filter_func`` of the implementation's torchao handler (C9, C17b), for each recipe: the
    handler built with ``fp8_enable_fsdp_float8_all_gather`` (tensorwise, C6) is judged by the same rules."""
    args = fp8_arguments(fp8=True, backend="torchao", all_gather=FILTER_RECIPES[request.param])
    handlers = impl.create_fp8_kwargs(args)
    assert len(handlers) == 1 and callable(getattr(handlers[0], "module_filter_func", None)), (
        f"no torchao handler with a callable module_filter_func ({request.param}): {handlers!r}"
    )
    return handlers[0].module_filter_func  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def standin_te_dir(pytestconfig: pytest.Config) -> Path:
    """A directory holding the stand-in ``transformer_engine`` (not on ``sys.path``: tests put it there
    with :func:`.kit.standin_te.standin_te`). It only lets accelerate build TE recipes and convert models on a
    machine without TE; it never serves a G clause."""
    return early.standin_te_dir(pytestconfig)


@pytest.fixture(scope="module")
def te_by_auto(
    request: pytest.FixtureRequest, impl_name: str, impl: Implementation, standin_te_dir: Path
) -> dict[str, dict[str, Any]]:
    """``auto`` in a fresh interpreter where torchao is not importable and the stand-in TE is, by call id (C7 and
    C8b read one child); the module's ``TE_BY_AUTO_NEEDS`` names the function its tests read."""
    impl.require(request.module.TE_BY_AUTO_NEEDS)
    out = run_probe(te_by_auto_probe(impl_name, standin_te_dir))
    return {r["id"]: r for r in out["results"]}


@pytest.fixture(scope="session")
def deepspeed_run(
    request: pytest.FixtureRequest, impl: Implementation, impl_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pending]:
    """The one DeepSpeed process of the session (C16, and C12 and G5 under DeepSpeed), making the runs the selected
    tests read, or the one started early (:mod:`.kit.deepspeed_run`)."""
    yield from single_rank_run(request, impl.missing, impl_name, tmp_path_factory)


# --------------------------------------------------------------------------- children started early


def _freeze_what_is_loaded() -> None:
    """Move every object that exists now (torch, transformers, the collected tests: hundreds of thousands of them) out
    of the garbage collector's reach (``gc.freeze``). The HF ``Trainer`` runs ``gc.collect()`` at the start of each
    training (``Accelerator.free_memory``): over this heap one collection took 0.3 s, and the suite's Trainer runs
    paid 3 s of a 17 s session for it. What the tests create is collected as before; the frozen objects would never
    have been garbage."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    """In a session of one process, start the children the selected tests will ask for now (:mod:`.kit.early`);
    an xdist worker starts them at their first test. Either way, freeze what collection built (see below)."""
    if session.config.option.collectonly or not session.items:
        return
    _freeze_what_is_loaded()
    if hasattr(session.config, "workerinput"):
        return
    info = implementation_of(session.config)
    if info.module is not None:
        children.start_children_early(session, info.name, info.missing)


# --------------------------------------------------------------------------- isolation


#: Packages that log a WARNING once, when first imported (DeepSpeed: "Setting accelerator to CPU"). An
#: implementation's verify may import them through accelerate; imported before any test, their one-time
#: message is not taken for the warning of whichever test happened to import them first.
_NOISY_ON_FIRST_IMPORT = ("deepspeed",)


@pytest.fixture(scope="session", autouse=True)
def _import_noisy_packages_first() -> None:
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


_SAVED = pytest.StashKey[Snapshot]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    reset_accelerate_state()
    item.stash[_SAVED] = snapshot()
    drop_fp8_variables()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    saved = item.stash.get(_SAVED, None)
    if saved is not None:
        saved.restore()
