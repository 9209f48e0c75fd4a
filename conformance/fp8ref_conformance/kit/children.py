"""The suite's child processes, each declared once: its name, the tests that claim it, and what starts it early.

In a session of one process the conftest calls :func:`start_children_early` when collection ends: each child whose
claiming tests were selected starts then (see :mod:`.early`), and the fixture that needs it claims it
(:func:`.processes.claim`) instead of starting it. A child nobody claims is stopped with the session. Under
pytest-xdist nothing starts early: each fixture starts its child at its first use.

To add a child: a module under ``children/``, a launcher with a ``start_early(early)`` in ``kit/``, the fixture that
claims it, and one :class:`ChildProcess` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from . import deepspeed_run, fsdp2_ranks
from .contract import no_backend_probe, te_by_auto_probe
from .early import EarlyStart, leave_a_core_to_the_children
from .processes import start_probe, stop_unclaimed


@dataclass(frozen=True)
class ChildProcess:
    """One child: ``name``; ``claims(item)``: whether a selected test will ask for it; ``start_early(early)``: start
    it for those tests (``early.items``) unless what they need is missing."""

    name: str
    claims: Callable[[pytest.Item], bool]
    start_early: Callable[[EarlyStart], None]


def uses_fixture(fixture: str) -> Callable[[pytest.Item], bool]:
    """The tests that ask for ``fixture`` (directly or through another fixture)."""
    return lambda item: fixture in getattr(item, "fixturenames", ())


def _start_no_backend_probe(early: EarlyStart) -> None:
    if "create_fp8_kwargs" not in early.missing:
        start_probe(no_backend_probe(early.impl_name), early=True)


def _start_te_by_auto_probe(early: EarlyStart) -> None:
    """The function a claiming test reads is its module's ``TE_BY_AUTO_NEEDS`` (the ``te_by_auto`` fixture's)."""
    needs = {item.module.TE_BY_AUTO_NEEDS for item in early.items if isinstance(item, pytest.Function)}
    if needs - set(early.missing):
        start_probe(te_by_auto_probe(early.impl_name, early.standin_te_dir()), early=True)


#: Every child of the suite.
CHILDREN = (
    ChildProcess("no_backend_probe", uses_fixture("no_backend_results"), _start_no_backend_probe),  # C4
    ChildProcess("te_by_auto_probe", uses_fixture("te_by_auto"), _start_te_by_auto_probe),  # C7, C8b
    ChildProcess(fsdp2_ranks.NAME, uses_fixture("fsdp_run"), fsdp2_ranks.start_early),  # C15
    # C16, and C12 and G5 under DeepSpeed: the tests that say which runs they read.
    ChildProcess(deepspeed_run.NAME, lambda item: bool(deepspeed_run.runs_read_by(item)), deepspeed_run.start_early),
)


def start_children_early(session: pytest.Session, impl_name: str, missing: tuple[str, ...]) -> None:
    """Start each child that a selected test claims; the children nobody claims are stopped when the session ends."""
    session.config.add_cleanup(stop_unclaimed)
    started = 0
    for child in CHILDREN:
        items = tuple(item for item in session.items if child.claims(item))
        if items:
            child.start_early(EarlyStart(session.config, impl_name, missing, items))
            started += 1
    if started:
        leave_a_core_to_the_children(session.config)
