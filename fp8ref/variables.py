"""The environment variables of an FP8 request: their names, their values for a request, and the request read
back from them.

:mod:`fp8ref.environment` writes them (``configure_fp8_environment``) and hands its request to the patch itself;
:func:`~fp8ref.patch.patch_accelerator_for_fp8` called without arguments reads the request back from them (set by
``configure_fp8_environment``, or by ``accelerate launch``), and verify reads ``ACCELERATE_MIXED_PRECISION``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fp8ref.config import Backend, FP8Settings, parse_recipe
from fp8ref.errors import FP8ConfigError
from fp8ref.recipes import TE_AMAX_COMPUTE_ALGO, TE_AMAX_HISTORY_LEN, TE_FP8_FORMAT

MIXED_PRECISION_VAR = "ACCELERATE_MIXED_PRECISION"
BACKEND_VAR = "ACCELERATE_FP8_BACKEND"
ALL_GATHER_VAR = "ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER"
TE_FORMAT_VAR = "ACCELERATE_FP8_FORMAT"
TE_AMAX_HISTORY_LEN_VAR = "ACCELERATE_FP8_AMAX_HISTORY_LEN"
TE_AMAX_COMPUTE_ALGO_VAR = "ACCELERATE_FP8_AMAX_COMPUTE_ALGO"
COMPAT_BACKEND_VAR = "FP8_BACKEND"
COMPAT_ALL_GATHER_VAR = "FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER"
RECIPE_VAR = "FP8_RECIPE"
AUTO_FILTER_VAR = "FP8_AUTO_FILTER"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def fp8_environment_variables(settings: FP8Settings) -> dict[str, str]:
    """The variables (name to value) of an enabled request whose backend is resolved: what
    :func:`~fp8ref.environment.configure_fp8_environment` sets."""
    variables = {
        MIXED_PRECISION_VAR: "fp8",
        BACKEND_VAR: settings.backend.accelerate_name,
        ALL_GATHER_VAR: _flag(settings.enable_fsdp_float8_all_gather),
        COMPAT_BACKEND_VAR: settings.backend.value,
        COMPAT_ALL_GATHER_VAR: _flag(settings.enable_fsdp_float8_all_gather),
        AUTO_FILTER_VAR: _flag(settings.auto_filter),
    }
    if settings.backend is Backend.TORCHAO:
        variables[RECIPE_VAR] = settings.effective_recipe.value
    else:
        variables[TE_FORMAT_VAR] = TE_FP8_FORMAT
        variables[TE_AMAX_HISTORY_LEN_VAR] = str(TE_AMAX_HISTORY_LEN)
        variables[TE_AMAX_COMPUTE_ALGO_VAR] = TE_AMAX_COMPUTE_ALGO
    return variables


def settings_from_environment(environ: Mapping[str, str] | None = None) -> FP8Settings:
    """Rebuild the FP8 request from the variables :func:`configure_fp8_environment` set.

    Raises :class:`FP8ConfigError` when the environment does not request FP8.
    """
    env = os.environ if environ is None else environ
    if env.get(MIXED_PRECISION_VAR, "").lower() != "fp8":
        raise FP8ConfigError(
            f"{MIXED_PRECISION_VAR} is {env.get(MIXED_PRECISION_VAR)!r}, not 'fp8': call "
            "configure_fp8_environment(training_args) first, or pass training_args to "
            "patch_accelerator_for_fp8(training_args)"
        )
    accelerate_backend = env.get(BACKEND_VAR, "").upper()
    named = Backend.from_accelerate_name(accelerate_backend)
    if accelerate_backend and named is None:
        raise FP8ConfigError(
            f"{BACKEND_VAR}={env.get(BACKEND_VAR)!r}: fp8ref supports 'AO' (torchao) and 'TE' (Transformer Engine)"
        )
    backend = named or Backend.AUTO
    all_gather = env.get(ALL_GATHER_VAR, env.get(COMPAT_ALL_GATHER_VAR, "false")).strip().lower()
    recipe = parse_recipe(env.get(RECIPE_VAR)) if backend is Backend.TORCHAO else None
    return FP8Settings(
        enabled=True,
        backend=backend,
        recipe=recipe,
        enable_fsdp_float8_all_gather=all_gather in ("1", "true", "yes", "on"),
        auto_filter=env.get(AUTO_FILTER_VAR, "false").strip().lower() in ("1", "true", "yes", "on"),
    )
