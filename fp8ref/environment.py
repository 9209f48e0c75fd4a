"""The environment that accelerate reads, so that an ``Accelerator()`` built by someone else (the HF
``Trainer``, ``accelerate launch``) runs FP8 with the requested backend.

accelerate reads ``ACCELERATE_MIXED_PRECISION``, ``ACCELERATE_FP8_BACKEND`` (``AO``/``TE``) and the
``ACCELERATE_FP8_*`` recipe defaults. It never reads ``FP8_BACKEND`` or ``FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER``;
fp8ref sets those too, for code written against the original helpers, and ``FP8_RECIPE`` and
``FP8_AUTO_FILTER`` so that :func:`~fp8ref.patch.patch_accelerator_for_fp8` can rebuild the same recipe
from the environment alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from fp8ref.backends import INSTALL_HINT, probe_backend, resolve_settings
from fp8ref.config import Backend, FP8Settings
from fp8ref.deepspeed_check import check_deepspeed_compatible, deepspeed_requested
from fp8ref.errors import FP8BackendUnavailableError
from fp8ref.patch import (
    guard_accelerator_outside_fp8,
    install_fp8_patch,
    is_accelerator_patched,
    unpatch_accelerator_for_fp8,
)
from fp8ref.variables import BACKEND_VAR, fp8_environment_variables

logger = logging.getLogger(__name__)


def _configure(
    training_args: Any, *, patch: bool, undo: contextlib.ExitStack | None = None
) -> tuple[dict[str, str], bool]:
    """Parse the request once and carry it through: resolve its backend, check it, write its variables and, with
    ``patch``, hand it to the Accelerator patch. Returns the variables whose value changed and whether the backend
    is usable here. ``undo`` (:func:`fp8_environment`) is told how to put back what is changed, before it is."""
    settings = FP8Settings.from_training_args(training_args)
    if not settings.enabled:
        return {}, False
    # A named backend is written even where it is not installed (accelerate then fails loudly at
    # Accelerator() time); 'auto' must be resolved here, since accelerate's own auto-detection would
    # build its default tensorwise recipe.
    resolved = resolve_settings(settings, require_available=False)
    probe = None if settings.backend is Backend.AUTO else probe_backend(resolved.backend)
    variables = fp8_environment_variables(resolved)
    if undo is not None:
        if not is_accelerator_patched():
            undo.callback(unpatch_accelerator_for_fp8)
        undo.callback(_restore, {name: os.environ.get(name) for name in variables})
    check_deepspeed_compatible(
        resolved.enable_fsdp_float8_all_gather,
        deepspeed=deepspeed_requested(training_args, environ={}),
        where="the training arguments carry a DeepSpeed config",
    )
    usable = probe is None or probe.available
    if probe is not None and not probe.available:
        logger.warning(
            "%s=%s is set, but %s is not usable here (%s): Accelerator() will fail. Install it: %s",
            BACKEND_VAR,
            variables[BACKEND_VAR],
            probe.package,
            probe.reason,
            INSTALL_HINT[resolved.backend],
        )
    changed = {name: value for name, value in variables.items() if os.environ.get(name) != value}
    os.environ.update(variables)
    for name, value in changed.items():
        logger.info("set %s=%s", name, value)
    if not patch:
        return changed, usable
    if usable:
        try:
            install_fp8_patch(resolved)
        except FP8BackendUnavailableError as exc:  # importable, but accelerate cannot build its recipe handler
            logger.warning("%s=%s is set, but %s Accelerator() will fail.", BACKEND_VAR, os.environ[BACKEND_VAR], exc)
            usable = False
    if not usable:
        guard_accelerator_outside_fp8()
    return changed, usable


def _restore(previous: dict[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def set_fp8_environment(training_args: Any) -> tuple[dict[str, str], bool]:
    """The environment part of :func:`configure_fp8_environment`, without touching accelerate: what the original
    helpers did. Returns the variables whose value changed and whether the backend named is importable here
    (``auto`` resolves to an importable one or raises). Validates before writing anything; idempotent; nothing
    when FP8 is off.

    The environment alone does not turn FP8 on for an ``Accelerator`` whose caller passes ``mixed_precision`` (the
    HF ``Trainer`` does, from ``TrainingArguments`` built before this call): use :func:`configure_fp8_environment`.
    """
    return _configure(training_args, patch=False)


def configure_fp8_environment(training_args: Any) -> dict[str, str]:
    """Set the environment that accelerate reads for the FP8 request of ``training_args``, and patch accelerate so
    that every ``Accelerator`` built from now on runs FP8 with fp8ref's recipe and module filter.

    Returns the variables whose value changed (name to new value). Does nothing when FP8 is off. Validation
    happens before any variable is written, so an invalid request leaves ``os.environ`` (and accelerate) as it
    was: an unknown backend, or the FSDP float8 all-gather with a DeepSpeed config in the arguments
    (:class:`FP8ConfigError`, see :mod:`fp8ref.deepspeed_check`). Idempotent.

    The environment alone (:func:`set_fp8_environment`) is not enough for a trainer whose ``TrainingArguments``
    were built before this call (LLaMA-Factory's trainers call it inside ``Trainer.__init__``):
    ``TrainingArguments`` read ``ACCELERATE_MIXED_PRECISION`` when they are built, and the HF ``Trainer`` passes
    that value (``mixed_precision="no"``, or ``"bf16"``) to its ``Accelerator`` explicitly, which accelerate prefers
    over the variable. So this also installs the patch of :func:`~fp8ref.patch.patch_accelerator_for_fp8`, with the
    request it parsed (:func:`~fp8ref.patch.install_fp8_patch`): the ``Accelerator`` the Trainer builds next is FP8
    whatever ``mixed_precision`` it is given, a second ``patch_accelerator_for_fp8()`` changes nothing, and an
    ``Accelerator`` that is not in FP8 (one built before this call) still prepares models in high precision instead
    of failing in accelerate (contract clause C8g).
    The arguments object is not modified. When the backend is not usable here (not importable, or accelerate
    cannot build its recipe handler), only the C8g fix is installed, and a warning says that ``Accelerator()``
    will fail: this function itself raises only for invalid arguments. :func:`~fp8ref.patch.unpatch_accelerator_for_fp8`
    undoes the patch; :func:`fp8_environment` undoes both.
    """
    return _configure(training_args, patch=True)[0]


@contextlib.contextmanager
def fp8_environment(training_args: Any) -> Iterator[dict[str, str]]:
    """Context manager form of :func:`configure_fp8_environment`: restores the previous values on exit, and
    removes accelerate's patch unless it was there before."""
    with contextlib.ExitStack() as undo:
        yield _configure(training_args, patch=True, undo=undo)[0]
