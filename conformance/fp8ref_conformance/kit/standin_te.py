"""The stand-in ``transformer_engine`` package: where its files are, writing it with installed metadata, telling it
apart from the real one, and putting it on ``sys.path`` for a block.

Its source is package data of the suite (``standin_te/transformer_engine/``, see the README there): no kernels,
high-precision layers, a recording ``fp8_autocast``. It lets accelerate build TE recipes and convert models on a
machine without TE (C7, C8f, C13, the CPU twins of the G clauses); it never serves a G clause verdict on CUDA.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

from .packages import modules_set_aside

STANDIN_TE_VERSION = "0.0.0+conformance.standin"
STANDIN_MARKER = "__fp8_conformance_standin__"
#: The stand-in's source, shipped with the suite.
STANDIN_SOURCE = Path(__file__).resolve().parent.parent / "standin_te" / "transformer_engine"


def write_standin_te(directory: Path) -> Path:
    """Copy the stand-in ``transformer_engine`` package into ``directory`` with a ``transformer-engine``
    dist-info, which is what accelerate's ``is_transformer_engine_available`` (``importlib.util.find_spec`` plus
    ``importlib.metadata``) and ``TERecipeKwargs.__post_init__`` check. Returns ``directory``.

    Written once per folder, each part built aside and renamed into place: a child process (the early DeepSpeed
    run) may be importing the stand-in from ``directory`` while a test asks for it again, and a rewrite in place
    would let it read a half-copied module."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = directory / f"transformer_engine-{STANDIN_TE_VERSION}.dist-info"
    if (dist_info / "INSTALLER").is_file():
        return directory
    _into_place(directory / "transformer_engine", _copy_source)
    _into_place(dist_info, _write_metadata)
    return directory


def _copy_source(aside: Path) -> None:
    shutil.copytree(STANDIN_SOURCE, aside, ignore=_bytecode)


def _write_metadata(aside: Path) -> None:
    aside.mkdir()
    summary = "Stand-in transformer_engine written by the fp8ref conformance suite; it has no kernels."
    (aside / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: transformer-engine\nVersion: {STANDIN_TE_VERSION}\nSummary: {summary}\n"
    )
    (aside / "top_level.txt").write_text("transformer_engine\n")
    (aside / "RECORD").write_text("")
    (aside / "INSTALLER").write_text("fp8ref-conformance\n")


def _into_place(target: Path, build: Callable[[Path], None]) -> None:
    """Build ``target`` under a name of its own, then rename it into place; where another writer got there first,
    theirs stays (the two are the same)."""
    if target.exists():
        return
    aside = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(aside, ignore_errors=True)
    build(aside)
    try:
        aside.rename(target)
    except OSError:  # written meanwhile by another process
        shutil.rmtree(aside, ignore_errors=True)


def _bytecode(directory: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__" or name.endswith(".pyc")]


def is_standin_te(module: types.ModuleType | None) -> bool:
    """Whether ``module`` (``transformer_engine`` or a submodule) is the suite's stand-in."""
    return bool(module is not None and getattr(module, STANDIN_MARKER, False))


@contextlib.contextmanager
def standin_te(directory: Path) -> Iterator[Path]:
    """Put the stand-in TE on ``sys.path`` for the block; remove it and its modules afterwards."""
    write_standin_te(directory)
    entry = str(directory)
    with modules_set_aside("transformer_engine"):
        sys.path.insert(0, entry)
        importlib.invalidate_caches()
        try:
            yield directory
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
    importlib.invalidate_caches()
