"""fp8ref: reference FP8 training helpers for Hugging Face Accelerate.

The five helpers of the contract::

    create_fp8_kwargs(training_args) -> list           # accelerate kwargs handlers
    get_fp8_mixed_precision(training_args) -> str | None
    configure_fp8_environment(training_args) -> dict   # the variables it changed
    verify_fp8_status(accelerator, training_args) -> FP8Report
    patch_accelerator_for_fp8(training_args=None) -> None

``import fp8ref`` needs neither torchao nor Transformer Engine: backends are imported when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fp8ref.config import Backend, FP8Settings, TorchaoRecipe
from fp8ref.errors import FP8BackendUnavailableError, FP8ConfigError, FP8Error, FP8NotActiveError
from fp8ref.module_filter import (  # eager: ``fp8ref.module_filter`` must stay the function, not the submodule
    HEAD_AND_EMBEDDING_NAMES,
    FilterDecision,
    ModuleFilter,
    SizeThreshold,
    SkipReason,
    explain,
    make_module_filter,
    module_filter,
)

if TYPE_CHECKING:
    from fp8ref.backends import BackendProbe, probe_backend, resolve_backend
    from fp8ref.environment import configure_fp8_environment, fp8_environment
    from fp8ref.patch import is_accelerator_patched, patch_accelerator_for_fp8, unpatch_accelerator_for_fp8
    from fp8ref.recipes import create_fp8_kwargs, get_fp8_mixed_precision
    from fp8ref.verify import FP8Report, verify_fp8_status

#: Where each public name that needs torch or accelerate lives: imported on first use (PEP 562), so that ``import
#: fp8ref`` and the command line (``fp8ref check`` hands the suite to a child process) do not pay torch's import
#: until they need it.
_HOMES = {
    "BackendProbe": "backends",
    "probe_backend": "backends",
    "resolve_backend": "backends",
    "configure_fp8_environment": "environment",
    "fp8_environment": "environment",
    "is_accelerator_patched": "patch",
    "patch_accelerator_for_fp8": "patch",
    "unpatch_accelerator_for_fp8": "patch",
    "create_fp8_kwargs": "recipes",
    "get_fp8_mixed_precision": "recipes",
    "FP8Report": "verify",
    "verify_fp8_status": "verify",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fp8ref' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fp8ref.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__version__ = "0.1.0"

__all__ = [
    "HEAD_AND_EMBEDDING_NAMES",
    "Backend",
    "BackendProbe",
    "FP8BackendUnavailableError",
    "FP8ConfigError",
    "FP8Error",
    "FP8NotActiveError",
    "FP8Report",
    "FP8Settings",
    "FilterDecision",
    "ModuleFilter",
    "SizeThreshold",
    "SkipReason",
    "TorchaoRecipe",
    "configure_fp8_environment",
    "create_fp8_kwargs",
    "explain",
    "fp8_environment",
    "get_fp8_mixed_precision",
    "is_accelerator_patched",
    "make_module_filter",
    "module_filter",
    "patch_accelerator_for_fp8",
    "probe_backend",
    "resolve_backend",
    "unpatch_accelerator_for_fp8",
    "verify_fp8_status",
]
