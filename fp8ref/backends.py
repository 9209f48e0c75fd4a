"""Which FP8 backend is importable here, and which one a request resolves to.

"Available" follows the contract: torchao is available when ``import torchao.float8`` works, Transformer
Engine when ``import transformer_engine.pytorch`` works. Probes import the package (that is the only
honest test: a broken install fails here rather than deep inside ``accelerator.prepare``) and keep the
failure's text so that errors can show it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
from dataclasses import dataclass

from fp8ref.config import Backend, FP8Settings
from fp8ref.errors import FP8BackendUnavailableError

logger = logging.getLogger(__name__)

_PROBE_MODULE = {Backend.TORCHAO: "torchao.float8", Backend.TE: "transformer_engine.pytorch"}
_DISTRIBUTIONS = {Backend.TORCHAO: ("torchao",), Backend.TE: ("transformer-engine", "transformer_engine")}
INSTALL_HINT = {
    Backend.TORCHAO: "pip install torchao  (or: pip install 'fp8ref[torchao]')",
    Backend.TE: "pip install --no-build-isolation 'transformer-engine[pytorch]' on a machine with CUDA "
    "(or: pip install 'fp8ref[te]')",
}


@dataclass(frozen=True)
class BackendProbe:
    """The outcome of trying to import one backend."""

    backend: Backend
    available: bool
    version: str | None
    reason: str | None

    @property
    def package(self) -> str:
        return self.backend.package


def installed_version(*distributions: str) -> str | None:
    """The installed version of the first of ``distributions`` that is installed, else ``None``."""
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def probe_backend(backend: Backend) -> BackendProbe:
    """Try to import ``backend`` and say whether it worked, and why not."""
    if backend is Backend.AUTO:
        raise ValueError("probe a concrete backend (torchao or te), not 'auto'")
    module = _PROBE_MODULE[backend]
    version = installed_version(*_DISTRIBUTIONS[backend])
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return BackendProbe(backend, False, version, f"`import {module}` failed: {exc}")
    except Exception as exc:  # a broken install raises OSError, RuntimeError, ...: report it, don't hide it
        logger.debug("importing %s raised", module, exc_info=True)
        return BackendProbe(
            backend,
            False,
            version,
            f"`import {module}` raised {type(exc).__name__}: {exc}",
        )
    return BackendProbe(backend, True, version, None)


def _unavailable_error(probe: BackendProbe, requested: Backend) -> FP8BackendUnavailableError:
    return FP8BackendUnavailableError(
        f"FP8 training was requested with fp8_backend={requested.value!r}, but {probe.package} is not "
        f"usable here ({probe.reason}). Install it: {INSTALL_HINT[probe.backend]}."
    )


def resolve_backend(settings: FP8Settings, *, require_available: bool = True) -> Backend:
    """The concrete backend of ``settings``: the one named, or for ``auto`` torchao, else TE.

    With ``require_available`` a named backend that cannot be imported raises
    :class:`FP8BackendUnavailableError`. ``auto`` always needs one importable backend.
    """
    if settings.backend is not Backend.AUTO:
        if require_available:
            probe = probe_backend(settings.backend)
            if not probe.available:
                raise _unavailable_error(probe, settings.backend)
        return settings.backend
    probes = []
    for candidate in (Backend.TORCHAO, Backend.TE):
        probe = probe_backend(candidate)
        if probe.available:
            return candidate
        probes.append(probe)
    reasons = "; ".join(f"{p.package}: {p.reason}" for p in probes)
    raise FP8BackendUnavailableError(
        "FP8 training was requested with fp8_backend='auto', but neither torchao nor transformer-engine "
        f"is usable here ({reasons}). Install one: {INSTALL_HINT[Backend.TORCHAO]}; or "
        f"{INSTALL_HINT[Backend.TE]}."
    )


def resolve_settings(settings: FP8Settings, *, require_available: bool = True) -> FP8Settings:
    """``settings`` with the backend that :func:`resolve_backend` resolves it to."""
    return dataclasses.replace(settings, backend=resolve_backend(settings, require_available=require_available))
