"""The models the clauses are checked on, one definition each: a mix of eligible, odd-sized, head and look-alike
layers (C10), an early odd-sized layer before eligible ones (G3, C13a), a model with no eligible layer (C12a),
a small MLP (C11), and one tiny ``LlamaForCausalLM`` built from a ``LlamaConfig`` (no download) for the
prepare, Trainer, DeepSpeed and LoRA clauses and the example."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

import torch
from torch import nn


class _Output(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(64, 64)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.output = _Output()


class _Block(nn.Module):
    """BERT-like nesting: ``attention.output.dense`` is an ordinary (and large) layer."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = _Attention()


class SubLinear(nn.Linear):
    """A user subclass of nn.Linear (LoRA-style wrappers, quantization stubs): still an nn.Linear."""


class LinearLike(nn.Module):
    """Not an nn.Linear, but looks like one: a 2-D weight, in_features and out_features."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / 8)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


class Conv1DLike(nn.Module):
    """GPT-2's Conv1D layout: a 2-D weight of shape (in, out), not an nn.Linear."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.nf = out_features
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


def mixed_model(seed: int = 0) -> nn.Module:
    """A Sequential mixing eligible, odd-sized, head and look-alike layers (C10; not run forward)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            fc_in=nn.Linear(64, 64),
            act=nn.GELU(),
            odd=nn.Linear(64, 40),
            norm=nn.LayerNorm(40),
            back=nn.Linear(40, 64),
            encoder=nn.ModuleDict({"layer": nn.ModuleList([_Block()])}),
            output_proj=nn.Linear(64, 64),
            sub=SubLinear(64, 32),
            like=LinearLike(32, 32),
            output=nn.Linear(64, 64),
            lm_head=nn.Linear(64, 32),
        )
    )


#: What C9 accepts in :func:`mixed_model`.
MIXED_MODEL_ELIGIBLE = frozenset({"fc_in", "encoder.layer.0.attention.output.dense", "output_proj", "sub"})


def odd_early_layer_model(seed: int = 0) -> nn.Module:
    """An early ``nn.Linear`` with a dimension not divisible by 16, then eligible layers: accelerate's own
    Transformer Engine conversion stops at ``early`` and leaves every later layer unconverted (G3). Last, a head
    whose sizes are eligible and whose name is not (C9c): a conversion that ignores the filter's name rules
    converts it."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            early=nn.Linear(64, 40),
            back=nn.Linear(40, 64),
            block=nn.Sequential(OrderedDict(fc1=nn.Linear(64, 128), fc2=nn.Linear(128, 64))),
            later=nn.Linear(64, 64),
            lm_head=nn.Linear(64, 64),
        )
    )


#: The layers of :func:`odd_early_layer_model` that the contract's filter accepts.
ODD_EARLY_LAYER_ELIGIBLE = ("block.fc1", "block.fc2", "later")


def ineligible_model(seed: int = 0) -> nn.Module:
    """Only layers that C9 rejects: odd sizes and a head (C12a: FP8 cannot be in effect)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(odd=nn.Linear(64, 40), act=nn.ReLU(), back=nn.Linear(40, 24), lm_head=nn.Linear(24, 64))
    )


def mlp_model(
    widths: tuple[int, ...] = (64, 128, 64), *, seed: int = 0, dtype: torch.dtype = torch.bfloat16
) -> nn.Module:
    """A small MLP whose layers are all eligible (C11 numerics)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers).to(dtype)


#: The seven projections of a Llama decoder layer (C14, C16, C17: each must become an FP8 layer).
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: The tiny Llama's vocabulary and decoder layers.
TINY_LLAMA_VOCAB = 128
TINY_LLAMA_LAYERS = 2


def tiny_llama_config(
    *,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = TINY_LLAMA_LAYERS,
    max_positions: int = 64,
) -> Any:
    """A tiny ``LlamaConfig``: by default every projection (64x64, 64x128, 128x64) is divisible by 16 and small
    enough for torchao's real float8 kernels on the CPU; ``lm_head`` is not tied to the embedding."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=TINY_LLAMA_VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )


def tiny_llama(seed: int = 0, dtype: torch.dtype = torch.float32, **config: Any) -> nn.Module:
    """A tiny ``LlamaForCausalLM`` from :func:`tiny_llama_config` (``config`` overrides its sizes)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model: nn.Module = LlamaForCausalLM(tiny_llama_config(**config))
    return model.to(dtype)
