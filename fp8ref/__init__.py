"""fp8ref: reference FP8 training helpers for Hugging Face Accelerate.

The five helpers of the contract::

    create_fp8_kwargs(training_args) -> list           # accelerate kwargs handlers
    get_fp8_mixed_precision(training_args) -> str | None
    configure_fp8_environment(training_args) -> dict   # the variables it changed
    verify_fp8_status(accelerator, training_args) -> FP8Report
    patch_accelerator_for_fp8(training_args=None) -> None

``import fp8ref`` needs neither torchao nor Transformer Engine: backends are imported when used.
"""

from fp8ref.backends import BackendProbe, probe_backend, resolve_backend
from fp8ref.config import Backend, FP8Settings, TorchaoRecipe
from fp8ref.environment import configure_fp8_environment, fp8_environment
from fp8ref.errors import FP8BackendUnavailableError, FP8ConfigError, FP8Error, FP8NotActiveError
from fp8ref.module_filter import (
    HEAD_AND_EMBEDDING_NAMES,
    FilterDecision,
    ModuleFilter,
    SizeThreshold,
    SkipReason,
    explain,
    make_module_filter,
    module_filter,
)
from fp8ref.patch import is_accelerator_patched, patch_accelerator_for_fp8, unpatch_accelerator_for_fp8
from fp8ref.recipes import create_fp8_kwargs, get_fp8_mixed_precision
from fp8ref.verify import FP8Report, verify_fp8_status

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
