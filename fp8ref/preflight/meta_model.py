"""The model of the setup, without weights: its architecture from a local ``config.json`` (a folder, a file, a model
already in the Hugging Face cache, or a bundled config), built on the meta device, wrapped by PEFT for LoRA.
Nothing is downloaded and no weights are read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from fp8ref.errors import FP8ConfigError
from fp8ref.module_filter import HEAD_AND_EMBEDDING_NAMES, last_component
from fp8ref.plan import EMBEDDED_CONFIG, build_meta_model, load_config_dict

#: Names that select the bundled tiny Llama (``fp8ref/data``).
BUNDLED = frozenset({"tiny_llama", EMBEDDED_CONFIG})


@dataclass(frozen=True)
class ModelSource:
    name: str
    config: dict[str, Any]


def _cached_config(model_id: str) -> str | None:
    """The ``config.json`` of ``model_id`` in the local Hugging Face cache, if it is there (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(model_id, "config.json")
    except ValueError:  # not a valid repository id
        return None
    return found if isinstance(found, str) else None


def resolve_model(reference: str | None) -> ModelSource:
    """The architecture ``reference`` names: a folder with ``config.json``, a config file, a bundled name, or a hub
    id whose ``config.json`` is in the local cache. Anything else is bad input: preflight downloads nothing."""
    if reference is None or reference in BUNDLED:
        name, config = load_config_dict(None)
        return ModelSource(name, config)
    path = Path(reference)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FP8ConfigError(f"model folder {reference} has no config.json")
        path = path / "config.json"
    if path.is_file():
        name, config = load_config_dict(path)
        return ModelSource(name, config)
    cached = _cached_config(reference)
    if cached is not None:
        _, config = load_config_dict(cached)
        return ModelSource(f"{reference} (config.json from the local Hugging Face cache)", config)
    raise FP8ConfigError(
        f"model {reference!r} is neither a local folder nor a config file, and its config.json is not in the local "
        "Hugging Face cache; preflight downloads nothing: give --model path/to/config.json "
        "(examples/configs/ has some) or a local model folder"
    )


def lora_targets_of(model: nn.Module, requested: Sequence[str]) -> list[str]:
    """The last FQN components LoRA wraps: ``all`` is every linear layer but heads and embeddings, as
    LLaMA-Factory's ``find_all_linear_modules`` finds them when it is installed."""
    names = [name for name in requested if name]
    if names and names != ["all"]:
        return names
    try:
        from llamafactory.model.model_utils.misc import find_all_linear_modules
    except ImportError:
        found = (last_component(fqn) for fqn, m in model.named_modules() if isinstance(m, nn.Linear))
        return sorted({name for name in found if name not in HEAD_AND_EMBEDDING_NAMES})
    return sorted(find_all_linear_modules(model, freeze_vision_tower=True))


def wrap_lora(model: nn.Module, rank: int, targets: Sequence[str]) -> nn.Module:
    """``model`` wrapped by PEFT's LoRA as LLaMA-Factory wraps it (``lora_alpha`` = 2 x rank), on the meta device."""
    import torch
    from peft import LoraConfig, get_peft_model  # an ImportError is the run's too: the caller reports it

    config = LoraConfig(
        task_type="CAUSAL_LM", r=rank, lora_alpha=2 * rank, target_modules=lora_targets_of(model, targets)
    )
    with torch.device("meta"):
        wrapped: nn.Module = get_peft_model(model, config)
    return wrapped


def build_model(source: ModelSource) -> nn.Module:
    return build_meta_model(source.config)
