"""The contract's names and rules, as the tests use them: the five functions, the valid backends, the names the
module filter excludes (C9c, C17b), the environment prefixes C8d allows, and plain argument objects.

Nothing here uses the implementation under test, so the suite judges any module the same way.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from .processes import Probe

#: The five functions of the contract ("The API under test").
CONTRACT_FUNCTIONS = (
    "create_fp8_kwargs",
    "get_fp8_mixed_precision",
    "configure_fp8_environment",
    "verify_fp8_status",
    "patch_accelerator_for_fp8",
)

#: Last FQN components that C9c excludes from conversion.
HEAD_NAMES = ("lm_head", "embed_out", "embed_in", "wte", "wpe", "output", "classifier", "score", "head")

#: FQN components that mark a LoRA adapter layer (C17b): in ANY component, not only the last.
LORA_ADAPTER_COMPONENTS = ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B")

#: Environment prefixes that C8d allows ``configure_fp8_environment`` to touch.
ALLOWED_ENV_PREFIXES = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_FP8_", "FP8_")

VALID_BACKENDS = ("auto", "torchao", "te")


def fp8_arguments(
    fp8: Any = True,
    backend: Any = "auto",
    all_gather: Any = False,
    *,
    omit: tuple[str, ...] = (),
) -> types.SimpleNamespace:
    """A plain training-arguments object with the three attributes the contract reads.

    ``omit`` names attributes to leave out, to check the contract's defaults for missing ones (C0).
    """
    values = {"fp8": fp8, "fp8_backend": backend, "fp8_enable_fsdp_float8_all_gather": all_gather}
    return types.SimpleNamespace(**{k: v for k, v in values.items() if k not in omit})


def is_lora_adapter_fqn(fqn: str) -> bool:
    """C17b: a module is an adapter layer when a component of its FQN (any, not only the last) is one of
    :data:`LORA_ADAPTER_COMPONENTS`, as a whole component (``lora_A_proj`` is not one)."""
    return any(part in LORA_ADAPTER_COMPONENTS for part in fqn.split("."))


def contract_accepts(module: Any, fqn: str) -> bool:
    """What clauses C9 and C17b say the module filter must answer (used as the expectation in tests).

    Two separate name rules: only the LAST component decides head and embedding names (C9c/d), while an
    adapter component anywhere in the FQN rejects the module (C17b, a structural rule)."""
    import torch.nn as nn

    if not isinstance(module, nn.Linear):
        return False
    if module.in_features % 16 or module.out_features % 16:
        return False
    if is_lora_adapter_fqn(fqn):
        return False
    return fqn.rsplit(".", 1)[-1] not in HEAD_NAMES


#: Calls made in a probe where neither torchao nor transformer_engine is importable (C4).
NO_BACKEND_CALLS: tuple[dict[str, Any], ...] = (
    {"id": "torchao", "fn": "create_fp8_kwargs", "args": {"fp8": True, "fp8_backend": "torchao"}},
    {"id": "auto", "fn": "create_fp8_kwargs", "args": {"fp8": True, "fp8_backend": "auto"}},
    {"id": "te", "fn": "create_fp8_kwargs", "args": {"fp8": True, "fp8_backend": "te"}},
    {
        "id": "torchao-all-gather",
        "fn": "create_fp8_kwargs",
        "args": {"fp8": True, "fp8_backend": "torchao", "fp8_enable_fsdp_float8_all_gather": True},
    },
)

#: Calls made in a probe with torchao hidden and the stand-in TE present (C7 and C8b share one subprocess).
TE_BY_AUTO_CALLS: tuple[dict[str, Any], ...] = (
    {"id": "create-auto", "fn": "create_fp8_kwargs", "args": {"fp8": True, "fp8_backend": "auto"}},
    {"id": "configure-auto", "fn": "configure_fp8_environment", "args": {"fp8": True, "fp8_backend": "auto"}},
    {
        "id": "configure-auto-all-gather",
        "fn": "configure_fp8_environment",
        "args": {"fp8": True, "fp8_backend": "auto", "fp8_enable_fsdp_float8_all_gather": True},
    },
)


def no_backend_probe(impl: str) -> Probe:
    """C4's probe: neither torchao nor transformer_engine importable."""
    return Probe(impl, NO_BACKEND_CALLS, hide=("torchao", "transformer_engine"))


def te_by_auto_probe(impl: str, standin_dir: Path) -> Probe:
    """The probe of ``auto`` with torchao hidden and the stand-in TE present (C7 and C8b read one child)."""
    return Probe(impl, TE_BY_AUTO_CALLS, hide=("torchao",), standin_dir=standin_dir)
