"""fp8ref's Transformer Engine conversion, checked with a minimal stand-in ``te.Linear``.

The stand-in only records construction arguments and holds parameters; it checks the traversal and
the filter, not TE itself (that is the GPU clauses' job).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
import torch
import torch.nn as nn

from fp8ref.te_convert import convert_to_transformer_engine, make_accelerate_converter


class _StandInTELinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool, params_dtype: torch.dtype, device: object):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=params_dtype))
        self.bias = nn.Parameter(torch.empty(out_features, dtype=params_dtype)) if bias else None


@pytest.fixture
def stand_in_te(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    package = types.ModuleType("transformer_engine")
    pytorch = types.ModuleType("transformer_engine.pytorch")
    pytorch.Linear = _StandInTELinear  # type: ignore[attr-defined]
    package.pytorch = pytorch  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformer_engine", package)
    monkeypatch.setitem(sys.modules, "transformer_engine.pytorch", pytorch)
    yield pytorch


def _model() -> nn.Module:
    block = nn.Sequential()
    block.add_module("odd", nn.Linear(64, 24))  # accelerate's converter stops the whole recursion here
    block.add_module("fc1", nn.Linear(64, 64))
    block.add_module("fc2", nn.Linear(64, 64, bias=False))
    model = nn.Sequential()
    model.add_module("block", block)
    model.add_module("lm_head", nn.Linear(64, 32))
    return model


def test_an_odd_layer_does_not_stop_later_siblings(stand_in_te: types.ModuleType) -> None:
    model = _model()
    weight = model.block.fc1.weight.detach().clone()
    converted = convert_to_transformer_engine(model)
    assert converted == ["block.fc1", "block.fc2"]
    assert isinstance(model.block.fc1, _StandInTELinear) and isinstance(model.block.fc2, _StandInTELinear)
    assert type(model.block.odd) is nn.Linear and type(model.lm_head) is nn.Linear
    assert torch.equal(model.block.fc1.weight, weight)
    assert model.block.fc2.bias is None


def test_accelerate_drop_in_delegates_the_reverse_direction(stand_in_te: types.ModuleType) -> None:
    calls: list[tuple[object, ...]] = []
    convert = make_accelerate_converter(lambda *args: calls.append(args), None)
    model = _model()
    convert(model, to_transformer_engine=False)
    assert len(calls) == 1 and calls[0][1] is False
    convert(model)
    assert isinstance(model.block.fc2, _StandInTELinear)
