"""Packages in this process: whether one imports, hiding one for a block (what "not installed" looks like), and
setting aside a package's loaded modules so that a block imports it afresh."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator


def importable(module: str) -> bool:
    """Whether ``import module`` works right now (the contract's notion of "available")."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _matches(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@contextlib.contextmanager
def hidden_packages(*roots: str) -> Iterator[None]:
    """Make the packages ``roots`` not importable for the block, then put everything back.

    Their entries in ``sys.modules`` are set aside and the root names set to ``None``, so ``import``
    raises ``ModuleNotFoundError`` and ``importlib.util.find_spec`` returns ``None`` (what
    accelerate's availability checks see when a package is not installed).

    This is in-process: an implementation that cached an availability answer earlier in the
    process would still see the package. The suite uses it only for Transformer Engine, which the
    torchao paths never need; torchao itself is hidden in a fresh subprocess (see
    :func:`.processes.run_probe`).
    """
    with modules_set_aside(*roots):
        for root in roots:
            sys.modules[root] = None  # type: ignore[assignment]
        yield


@contextlib.contextmanager
def modules_set_aside(*roots: str) -> Iterator[None]:
    """Set aside the loaded modules of ``roots`` for the block (a fresh import inside it), then put them back."""
    saved = {name: mod for name, mod in sys.modules.items() if _matches(name, roots)}
    for name in saved:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in [n for n in sys.modules if _matches(n, roots)]:
            del sys.modules[name]
        sys.modules.update(saved)
