"""Shapes and models of the benchmarks: linear-layer sweep, a Llama-style decoder block, a tiny Llama."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fp8ref import roofline


def shape_fields(config: LinearShape | BlockConfig | TinyLlamaConfig) -> dict[str, Any]:
    """What a benchmark records of its shape: every field of the config (its label as ``shape_label``), its id as
    ``shape``, the tokens of its batch as ``m`` and its FLOPs per step."""
    fields = dataclasses.asdict(config)
    fields["shape_label"] = fields.pop("label")
    tokens = config.m if isinstance(config, LinearShape) else config.tokens
    return {**fields, "shape": config.id, "m": tokens, "flops": config.flops}


@dataclass(frozen=True)
class LinearShape:
    """A linear layer ``M x K -> N`` with a label saying where it comes from."""

    label: str
    m: int
    k: int
    n: int

    @property
    def flops(self) -> int:
        return roofline.linear_train_flops(self.m, self.k, self.n)

    @property
    def id(self) -> str:
        return f"{self.label}-{self.m}x{self.k}x{self.n}"


def _llama_shapes(arch: roofline.LlamaShape, tokens: int) -> list[LinearShape]:
    """One entry per distinct (K, N) of the projections, labelled with all the projections sharing it."""
    by_shape: dict[tuple[int, int], list[str]] = {}
    for name, kn in roofline.llama_projection_shapes(arch).items():
        by_shape.setdefault(kn, []).append(name.removesuffix("_proj"))
    tag = arch.name.removeprefix("Llama-3-").lower()
    return [LinearShape(f"llama3-{tag}-{'+'.join(names)}", tokens, k, n) for (k, n), names in by_shape.items()]


#: Llama-3-8B and Llama-3-70B projections at 4096 and 8192 tokens (16 distinct shapes).
LLAMA_SHAPES: tuple[LinearShape, ...] = tuple(
    shape
    for arch in (roofline.LLAMA3_8B, roofline.LLAMA3_70B)
    for tokens in (4096, 8192)
    for shape in _llama_shapes(arch, tokens)
)

#: Shapes where the roofline model predicts FP8 to lose to bf16 on H100/H200 (cast traffic dominates).
SMALL_SHAPES: tuple[LinearShape, ...] = (
    LinearShape("small", 256, 256, 256),
    LinearShape("small", 1024, 512, 512),
    LinearShape("small", 4096, 256, 256),
    LinearShape("small", 8192, 4096, 128),
)

#: CPU smoke shapes: small enough for the CPU's real float8 kernel (torch._scaled_mm) to stay fast.
#: CPU float8 timing carries no information (and the CPU ``_scaled_mm`` is up to ~400x slower on some
#: machines), so the CPU smoke runs the smallest shape only: it proves the harness, the JSON and the report.
CPU_SHAPES: tuple[LinearShape, ...] = (LinearShape("cpu-smoke", 64, 64, 64),)


class LinearModel(nn.Module):
    """One bias-free linear layer, under a name fp8ref's filter converts (``proj``)."""

    def __init__(self, k: int, n: int) -> None:
        super().__init__()
        self.proj = nn.Linear(k, n, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _BatchOfSequences:
    """The id and token count of a config that runs ``batch`` sequences of ``seq`` tokens (its fields)."""

    label: str
    batch: int
    seq: int

    @property
    def id(self) -> str:
        return f"{self.label}-b{self.batch}s{self.seq}"

    @property
    def tokens(self) -> int:
        return self.batch * self.seq


@dataclass(frozen=True)
class BlockConfig(_BatchOfSequences):
    """A Llama-style decoder block and the batch it runs."""

    label: str
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    batch: int
    seq: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        arch = roofline.LlamaShape(
            self.label, self.hidden, self.intermediate, self.n_heads, self.n_kv_heads, self.head_dim
        )
        return roofline.llama_projection_shapes(arch)

    @property
    def flops(self) -> int:
        """Forward + backward FLOPs: the seven projections (6*T*K*N each) and attention.

        Attention counts QK^T and PV as full (not causal-halved) GEMMs, forward 4*B*S*S*H*D and
        backward twice that, as an unmasked kernel would compute.
        """
        linear = sum(6 * self.tokens * k * n for k, n in self.linear_shapes().values())
        attention = 12 * self.batch * self.seq * self.seq * self.n_heads * self.head_dim
        return linear + attention


CPU_BLOCK = BlockConfig("cpu-smoke-block", hidden=64, intermediate=128, n_heads=4, n_kv_heads=2, batch=1, seq=64)
GPU_BLOCKS = (
    BlockConfig("llama3-8b-block", hidden=4096, intermediate=14336, n_heads=32, n_kv_heads=8, batch=1, seq=4096),
    BlockConfig("llama3-8b-block", hidden=4096, intermediate=14336, n_heads=32, n_kv_heads=8, batch=2, seq=4096),
)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class DecoderBlock(nn.Module):
    """Pre-norm attention (grouped-query, rotary, causal SDPA) + SwiGLU MLP, with Llama's layer names."""

    def __init__(self, cfg: BlockConfig, rope_theta: float = 500000.0) -> None:
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.hidden, cfg.head_dim
        self.input_layernorm = RMSNorm(d)
        self.q_proj = nn.Linear(d, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * hd, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate_proj = nn.Linear(d, cfg.intermediate, bias=False)
        self.up_proj = nn.Linear(d, cfg.intermediate, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate, d, bias=False)
        inv_freq = 1.0 / (rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        angles = torch.outer(torch.arange(cfg.seq, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def _rope(self, x: torch.Tensor) -> torch.Tensor:
        cos = self.cos.to(x.dtype)
        sin = self.sin.to(x.dtype)
        return x * cos + _rotate_half(x) * sin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, s, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, s, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = self._rope(q), self._rope(k)
        groups = cfg.n_heads // cfg.n_kv_heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(attn.transpose(1, 2).reshape(b, s, cfg.n_heads * cfg.head_dim))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


@dataclass(frozen=True)
class TinyLlamaConfig(_BatchOfSequences):
    """A transformers LlamaConfig small enough to build without download, and its batch."""

    label: str
    hidden: int
    intermediate: int
    layers: int
    n_heads: int
    n_kv_heads: int
    vocab: int
    batch: int
    seq: int

    def llama_config(self) -> object:
        from transformers import LlamaConfig

        return LlamaConfig(
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_kv_heads,
            vocab_size=self.vocab,
            max_position_embeddings=self.seq,
            tie_word_embeddings=False,
        )

    @property
    def flops(self) -> int:
        """Forward + backward FLOPs of the linear layers (lm_head included) and attention, per step."""
        head_dim = self.hidden // self.n_heads
        arch = roofline.LlamaShape(self.label, self.hidden, self.intermediate, self.n_heads, self.n_kv_heads, head_dim)
        per_layer = sum(k * n for k, n in roofline.llama_projection_shapes(arch).values())
        linear = 6 * self.tokens * (self.layers * per_layer + self.hidden * self.vocab)
        attention = 12 * self.batch * self.seq * self.seq * self.hidden * self.layers
        return linear + attention


CPU_LLAMA = TinyLlamaConfig(
    "cpu-tiny-llama", hidden=64, intermediate=128, layers=2, n_heads=4, n_kv_heads=2, vocab=256, batch=2, seq=32
)
GPU_LLAMA = TinyLlamaConfig(
    "gpu-small-llama",
    hidden=2048,
    intermediate=8192,
    layers=4,
    n_heads=16,
    n_kv_heads=4,
    vocab=32000,
    batch=4,
    seq=2048,
)
