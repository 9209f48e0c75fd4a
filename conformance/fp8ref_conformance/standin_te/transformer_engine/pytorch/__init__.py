"""Stand-in transformer_engine of the fp8ref conformance suite; it has no kernels."""

import torch
import torch.nn.functional as F
from torch import nn

from transformer_engine.pytorch.fp8 import AUTOCAST_CALLS, FP8GlobalStateManager, fp8_autocast

__fp8_conformance_standin__ = True
__all__ = ["AUTOCAST_CALLS", "FP8GlobalStateManager", "LayerNorm", "Linear", "TransformerLayer", "fp8_autocast"]


def _params_dtype(params_dtype):
    return params_dtype if params_dtype is not None else torch.get_default_dtype()


class Linear(nn.Module):
    """High-precision stand-in of ``te.Linear`` (``F.linear``): no FP8, not an ``nn.Linear``."""

    def __init__(self, in_features, out_features, bias=True, params_dtype=None, device="cpu", **kwargs):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dtype = _params_dtype(params_dtype)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, inp):
        return F.linear(inp, self.weight, self.bias)


class LayerNorm(nn.Module):
    """High-precision stand-in of ``te.LayerNorm``."""

    def __init__(self, hidden_size, eps=1e-5, params_dtype=None, device="cpu", **kwargs):
        super().__init__()
        self.normalized_shape = (hidden_size,)
        self.eps = eps
        dtype = _params_dtype(params_dtype)
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(hidden_size, dtype=dtype, device=device))

    def forward(self, inp):
        return F.layer_norm(inp, self.normalized_shape, self.weight, self.bias, self.eps)


class TransformerLayer(nn.Module):
    """Present only because accelerate looks it up; the suite never builds one."""


def __getattr__(name):
    raise AttributeError(
        f"transformer_engine.pytorch.{name} is not provided by the conformance stand-in "
        "(it has high-precision Linear and LayerNorm layers and a recording fp8_autocast, no kernels)"
    )
