"""Children started early: the suite's child processes begin when collection ends, not at their first test.

A child (a probe in a fresh interpreter, the FSDP2 ranks, the DeepSpeed run) spends most of its time on one core
importing torch and training, while the test process waits for it. In a session of one process (``fp8ref check``,
``pytest conformance`` without pytest-xdist) the second core is otherwise idle, so the conftest starts, once the
selected tests are known, every child they will ask for: the children are declared in :mod:`.children`, and each
one's ``start_early`` registers it (:func:`.processes.register`). The test that needs a child
then claims it (:func:`.processes.claim`) and waits for it instead of starting it, so the children run beside the
in-process tests. A child nobody claims is stopped with the session. The training children are forks of the test
process rather than fresh interpreters (:mod:`.forks`): nothing has run in it yet.

Under pytest-xdist the workers do not know at collection which files they will run, and their cores are busy
anyway: there the children start at their first test, as they always could. Nothing here calls the
implementation: what starts early depends only on its name, the functions it lacks and the selected tests.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .standin_te import write_standin_te

_TEMP_DIR = pytest.StashKey[Path]()


@dataclass(frozen=True)
class EarlyStart:
    """What a child's ``start_early`` may use (see :mod:`.children`): the session's configuration, the
    implementation's name and missing functions, and the selected tests that claim the child."""

    config: pytest.Config
    impl_name: str
    missing: tuple[str, ...]
    items: tuple[pytest.Item, ...]

    def standin_te_dir(self) -> Path:
        """The session's stand-in TE directory (the ``standin_te_dir`` fixture's)."""
        return standin_te_dir(self.config)

    def temp_dir(self, name: str) -> Path:
        """A new directory for a child's results (removed with the session)."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=session_temp_dir(self.config)))


def session_temp_dir(config: pytest.Config) -> Path:
    """This session's directory for the children's files (created on first use, removed at the session's end)."""
    if _TEMP_DIR not in config.stash:
        directory = Path(tempfile.mkdtemp(prefix="fp8-conformance-"))
        config.stash[_TEMP_DIR] = directory
        config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    return config.stash[_TEMP_DIR]


def standin_te_dir(config: pytest.Config) -> Path:
    """The session's stand-in ``transformer_engine`` directory (written on first use): the fixture of the same name
    and the probes started early name the same one."""
    directory = session_temp_dir(config) / "standin_te"
    if not directory.exists():
        write_standin_te(directory)
    return directory


def leave_a_core_to_the_children(config: pytest.Config) -> None:
    """One torch thread for this process while the children run: the suite's models are tiny, and a second thread
    spinning on the core a child works on made both several times slower."""
    import torch

    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
        config.add_cleanup(lambda: torch.set_num_threads(threads))
