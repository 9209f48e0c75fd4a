"""Scripts that conformance tests start in separate processes (``torchrun``, ``accelerate launch``).

They ship inside the ``conformance`` package; :func:`worker_path` finds one whether the suite runs
from a checkout or from an installed wheel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def worker_path(name: str) -> Path:
    """The file system path of the worker script ``name`` (for example ``"fsdp_float8.py"``)."""
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"conformance worker script {name!r} not found at {path}")
    return path
