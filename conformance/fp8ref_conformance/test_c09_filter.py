"""C9 module filter of the torchao handler (``module_filter_func(module, fqn)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from .kit.contract import HEAD_NAMES, contract_accepts
from .kit.models import MIXED_MODEL_ELIGIBLE, Conv1DLike, LinearLike, SubLinear, mixed_model
from .kit.strategies import dims, fqns, suite_settings

PROPERTY = suite_settings()
Filter = Callable[[nn.Module, str], Any]


LINEAR_KINDS: dict[str, Callable[[int, int], nn.Module]] = {
    "Linear": lambda i, o: nn.Linear(i, o),
    "Linear-no-bias": lambda i, o: nn.Linear(i, o, bias=False),
    "SubLinear": lambda i, o: SubLinear(i, o),
    "NonDynamicallyQuantizableLinear": lambda i, o: nn.modules.linear.NonDynamicallyQuantizableLinear(i, o),
}
NON_LINEAR_KINDS: dict[str, Callable[[int, int], nn.Module]] = {
    "LinearLike": LinearLike,
    "Conv1DLike": Conv1DLike,
    "Embedding": lambda i, o: nn.Embedding(o, i),
    "LayerNorm": lambda i, o: nn.LayerNorm(i),
    "Sequential-of-Linear": lambda i, o: nn.Sequential(nn.Linear(i, o)),
    "Identity": lambda i, o: nn.Identity(),
}


def _judge(module_filter: Filter, module: nn.Module, fqn: str) -> bool:
    return bool(module_filter(module, fqn))


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("kind", sorted(NON_LINEAR_KINDS))
@pytest.mark.parametrize("fqn", ["layers.0.mlp.fc1", "dense", ""])
def test_c9a_non_linear_modules_are_rejected(module_filter: Filter, kind: str, fqn: str) -> None:
    module = NON_LINEAR_KINDS[kind](64, 64)
    assert _judge(module_filter, module, fqn) is False, f"{kind} at {fqn!r} was accepted; it is not an nn.Linear"


@pytest.mark.parametrize(("in_f", "out_f"), [(64, 40), (40, 64), (8, 8), (17, 32), (32, 100), (1, 16)])
def test_c9b_dims_not_divisible_by_16_are_rejected(module_filter: Filter, in_f: int, out_f: int) -> None:
    assert _judge(module_filter, nn.Linear(in_f, out_f), "layers.0.mlp.fc1") is False


@pytest.mark.parametrize("head", HEAD_NAMES)
@pytest.mark.parametrize("parent", ["", "model.", "transformer.layers.3."])
def test_c9c_head_names_are_rejected(module_filter: Filter, head: str, parent: str) -> None:
    fqn = parent + head
    assert _judge(module_filter, nn.Linear(64, 64), fqn) is False, f"{fqn!r} was accepted"


@pytest.mark.parametrize(
    "fqn",
    [
        "encoder.layer.3.output.dense",
        "attention.output.dense",
        "bert.encoder.layer.0.attention.output.dense",
        "lm_head.dense",
        "classifier.0",
        "score.proj",
        "head.fc",
        "wte.adapter",
    ],
)
def test_c9d_parent_component_named_output_is_converted(module_filter: Filter, fqn: str) -> None:
    """A head name in a parent component does not make a layer a head (BERT's largest layers)."""
    assert _judge(module_filter, nn.Linear(64, 64), fqn) is True, f"{fqn!r} was rejected"


@pytest.mark.parametrize(
    "fqn",
    [
        "output_proj",
        "embedding_mlp.fc1",
        "model.layers.0.self_attn.o_proj",
        "attention_output",
        "lm_head_proj",
        "scores",
        "classifier_dense",
        "heads",
        "embed_in_proj",
        "pre_output",
        "outputs",
        "wte_adapter",
    ],
)
def test_c9d_names_containing_head_words_are_converted(module_filter: Filter, fqn: str) -> None:
    assert _judge(module_filter, nn.Linear(64, 64), fqn) is True, f"{fqn!r} was rejected"


@pytest.mark.parametrize(
    "fqn",
    [
        "Output",
        "LM_HEAD",
        "model.Lm_Head",
        "encoder.layer.3.OUTPUT",
        "Classifier",
        "transformer.WTE",
        "Head",
        "decoder.Embed_Out",
        "Score",
    ],
)
def test_c9d_head_names_in_another_letter_case_are_converted(module_filter: Filter, fqn: str) -> None:
    """C9c names the excluded components exactly, in lower case: ``Output`` or ``LM_HEAD`` is some other
    component, and C9d converts every other ``nn.Linear``."""
    assert _judge(module_filter, nn.Linear(64, 64), fqn) is True, f"{fqn!r} was rejected"


@pytest.mark.parametrize("kind", sorted(LINEAR_KINDS))
@pytest.mark.parametrize(("in_f", "out_f"), [(16, 16), (64, 128), (256, 48)])
def test_c9d_eligible_linear_layers_are_converted(module_filter: Filter, kind: str, in_f: int, out_f: int) -> None:
    module = LINEAR_KINDS[kind](in_f, out_f)
    assert _judge(module_filter, module, "model.layers.1.mlp.up_proj") is True, f"{kind}({in_f}, {out_f}) rejected"


def _fingerprint(module: nn.Module) -> dict[str, Any]:
    return {
        "type": type(module),
        "training": module.training,
        "attrs": sorted(vars(module)),
        "tensors": {
            name: (id(t), t.detach().clone(), t.requires_grad, t.dtype, t.device)
            for name, t in [*module.named_parameters(), *module.named_buffers()]
        },
    }


def _assert_same_fingerprint(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["type"] is after["type"], "the filter changed the module's type"
    assert before["training"] == after["training"], "the filter changed train/eval mode"
    assert before["attrs"] == after["attrs"], "the filter added or removed module attributes"
    assert before["tensors"].keys() == after["tensors"].keys(), "the filter changed the parameters or buffers"
    for name, (ident, value, grad, dtype, device) in before["tensors"].items():
        a_ident, a_value, a_grad, a_dtype, a_device = after["tensors"][name]
        assert (ident, grad, dtype, device) == (a_ident, a_grad, a_dtype, a_device), f"the filter changed {name}"
        assert torch.equal(value, a_value), f"the filter changed the values of {name}"


@pytest.mark.parametrize(
    ("make", "fqn"),
    [
        (lambda: nn.Linear(64, 64), "layers.0.fc"),
        (lambda: nn.Linear(64, 40), "x"),
        (lambda: nn.Linear(64, 64), "lm_head"),
        (lambda: LinearLike(64, 64), "fc"),
        (lambda: nn.Linear(32, 32), ""),
    ],
    ids=["eligible", "odd", "head", "linear-like", "root"],
)
def test_c9e_filter_is_pure(module_filter: Filter, make: Callable[[], nn.Module], fqn: str) -> None:
    module = make()
    before = _fingerprint(module)
    answers = [_judge(module_filter, module, fqn) for _ in range(3)]
    _assert_same_fingerprint(before, _fingerprint(module))
    assert len(set(answers)) == 1, f"the same input gave different answers: {answers}"


#: An FQN that C9c never excludes: the answer there is the answer of C9a and C9b alone.
NEUTRAL_FQN = "layers.0.mlp.fc1"


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Linear(64, 64),
        lambda: SubLinear(32, 48),
        lambda: nn.Linear(64, 40),
        lambda: LinearLike(64, 64),
        lambda: nn.Embedding(64, 64),
    ],
    ids=["linear", "sub-linear", "odd-linear", "linear-like", "embedding"],
)
def test_c9f_empty_fqn_is_judged_by_type_and_dims(module_filter: Filter, make: Callable[[], nn.Module]) -> None:
    """The root module's empty name is accepted as input and plays no part: the filter answers at ``""`` what it
    answers for the same module under a name no rule excludes (whether that answer is right for the type and the
    sizes is C9a's and C9b's business)."""
    module = make()
    neutral, at_root = _judge(module_filter, module, NEUTRAL_FQN), _judge(module_filter, module, "")
    assert at_root is neutral, (
        f"{type(module).__name__} at '': {at_root}, at {NEUTRAL_FQN!r}: {neutral} (the empty FQN changed the answer)"
    )


# --------------------------------------------------------------------------- properties

ALL_KINDS = {**LINEAR_KINDS, **NON_LINEAR_KINDS}


@PROPERTY
@given(kind=st.sampled_from(sorted(ALL_KINDS)), in_f=dims(), out_f=dims(), fqn=fqns())
def test_c9_property_filter_follows_the_contract(
    module_filter: Filter, kind: str, in_f: int, out_f: int, fqn: str
) -> None:
    """Generated module types (nn.Linear, subclasses, look-alikes with a 2-D weight and in/out features),
    dimensions and FQNs (head names alone, in another letter case, inside longer names, in parent components;
    LoRA adapter components anywhere, the rule C17b adds to the filter): the filter answers what C9 a-d and f
    (and C17b) say, and it is pure (e). For the rowwise and the tensorwise handler alike."""
    module = ALL_KINDS[kind](in_f, out_f)
    before = _fingerprint(module)
    first = _judge(module_filter, module, fqn)
    second = _judge(module_filter, module, fqn)
    expected = contract_accepts(module, fqn)
    assert first is expected, f"{kind}({in_f}, {out_f}) at {fqn!r}: filter says {first}, C9/C17b say {expected}"
    assert second is first, "C9e: the same input gave a different answer"
    _assert_same_fingerprint(before, _fingerprint(module))


@PROPERTY
@given(
    parents=st.lists(st.sampled_from([*HEAD_NAMES, "layers", "3", "encoder", "block"]), min_size=1, max_size=4),
    last=st.sampled_from(["dense", "fc1", "o_proj", "output_proj", "attention_output", "up_proj"]),
)
def test_c9d_property_head_names_in_parents_do_not_matter(module_filter: Filter, parents: list[str], last: str) -> None:
    fqn = ".".join([*parents, last])
    assert _judge(module_filter, nn.Linear(32, 64), fqn) is True, f"{fqn!r} was rejected"


def test_c9_mixed_model_layers_are_judged_by_the_contract(module_filter: Filter) -> None:
    """Every module of the C10 test model, with its real FQN, gets the answer C9 gives."""
    model = mixed_model()
    accepted = {name for name, m in model.named_modules() if _judge(module_filter, m, name)}
    assert accepted == MIXED_MODEL_ELIGIBLE, f"accepted {sorted(accepted)}; C9 accepts {sorted(MIXED_MODEL_ELIGIBLE)}"
