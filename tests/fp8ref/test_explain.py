"""explain(): the reason behind each filter decision, and the opt-in size-aware filter."""

from __future__ import annotations

import pickle

import pytest
import torch.nn as nn

from fp8ref import ModuleFilter, SizeThreshold, SkipReason, TorchaoRecipe, explain, make_module_filter, module_filter


def test_each_reason_is_reported() -> None:
    assert explain(nn.ReLU(), "act").reason is SkipReason.NOT_LINEAR
    assert explain(nn.Linear(64, 40), "fc").reason is SkipReason.DIM_NOT_DIVISIBLE_BY_16
    assert explain(nn.Linear(64, 64), "model.lm_head").reason is SkipReason.HEAD_OR_EMBEDDING
    small = explain(nn.Linear(64, 64), "fc", size_threshold=SizeThreshold(TorchaoRecipe.ROWWISE))
    assert small.reason is SkipReason.BELOW_SIZE_THRESHOLD
    accepted = explain(nn.Linear(64, 64), "encoder.layer.3.output.dense")
    assert accepted.convert and accepted.reason is None


def test_explanations_name_the_numbers() -> None:
    decision = explain(nn.Linear(100, 64), "proj")
    assert "in_features=100" in decision.detail and "16" in decision.detail
    assert str(decision).startswith("proj: skip (dimension not divisible by 16)")
    assert str(explain(nn.Linear(16, 16), "")).startswith("<root>: convert")


def test_dimension_rule_comes_before_the_name_rule() -> None:
    assert explain(nn.Linear(64, 10), "lm_head").reason is SkipReason.DIM_NOT_DIVISIBLE_BY_16


# torchao 0.18 thresholds (N = out_features, K = in_features), cited in SizeThreshold's docstring.
@pytest.mark.parametrize(
    ("recipe", "k", "n", "too_small"),
    [
        ("rowwise", 4096, 2048, True),  # N <= 2048
        ("rowwise", 4096, 2064, False),
        ("rowwise", 1024, 8192, True),  # K <= 1024
        ("rowwise", 1040, 8192, False),
        ("rowwise", 2048, 4096, True),  # N <= 4096 and K <= 2048
        ("rowwise", 2064, 4096, False),
        ("rowwise", 2048, 4112, False),
        ("tensorwise", 4096, 1024, True),  # K <= 4096 and N <= 1024
        ("tensorwise", 4112, 1024, False),
        ("tensorwise", 4096, 1040, False),
        ("rowwise_with_gw_hp", 4096, 2048, True),  # rowwise thresholds
    ],
)
def test_size_thresholds_match_torchao(recipe: str, k: int, n: int, too_small: bool) -> None:
    assert SizeThreshold(TorchaoRecipe(recipe)).too_small(k, n) is too_small


def test_size_aware_filter_is_opt_in() -> None:
    layer = nn.Linear(1024, 1024)
    assert make_module_filter("rowwise")(layer, "mlp.up") is True
    assert make_module_filter("rowwise", size_aware=True)(layer, "mlp.up") is False
    assert make_module_filter("rowwise", size_aware=True)(nn.Linear(4096, 14336), "mlp.up") is True


def test_module_filter_objects_compare_by_value_and_pickle() -> None:
    assert ModuleFilter() == make_module_filter()
    sized = make_module_filter("tensorwise", size_aware=True)
    assert pickle.loads(pickle.dumps(sized)) == sized
    assert sized != ModuleFilter()


def test_plain_function_and_object_agree() -> None:
    for module, fqn in [(nn.Linear(32, 48), "a.b"), (nn.Linear(32, 48), "a.head"), (nn.Conv1d(16, 16, 1), "c")]:
        assert module_filter(module, fqn) == ModuleFilter()(module, fqn)
