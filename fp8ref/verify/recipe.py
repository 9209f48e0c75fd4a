"""The FP8 backend and recipe an accelerator holds."""

from __future__ import annotations

from typing import Any

TE_RECIPE_FIELDS = ("fp8_format", "amax_history_len", "amax_compute_algo")


def backend_name(accelerator: Any) -> str | None:
    """``AO``, ``TE``, ``MSAMP`` or None: accelerate's ``fp8_backend`` as a plain string."""
    backend = getattr(accelerator, "fp8_backend", None)
    if backend is None:
        return None
    return str(getattr(backend, "value", backend))


def recipe_of(accelerator: Any, backend: str | None) -> str | None:
    """A short name of the recipe the accelerator's FP8 handler holds."""
    if backend == "AO":
        handler = getattr(accelerator, "ao_recipe_handler", None)
        config = getattr(handler, "config", None)
        if config is None:
            return None
        from fp8ref.recipes import recipe_name_of

        name = recipe_name_of(config)
        if getattr(config, "enable_fsdp_float8_all_gather", False):
            name += " + fsdp float8 all-gather"
        return name
    if backend == "TE":
        handler = getattr(accelerator, "te_recipe_handler", None) or getattr(accelerator, "fp8_recipe_handler", None)
        if handler is None:
            return None
        fmt, history, algo = (getattr(handler, name, "?") for name in TE_RECIPE_FIELDS)
        return f"DelayedScaling {fmt}, amax_history_len={history}, amax_compute_algo={algo}"
    return None
