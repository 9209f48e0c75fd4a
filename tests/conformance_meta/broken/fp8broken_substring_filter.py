"""Broken on purpose (breaks C9d): the module filter skips any layer whose name merely contains a head
name such as "output" (BERT's ``attention.output.dense`` included), the seed's substring test.
Everything else is fp8ref's."""

from __future__ import annotations

from typing import Any

from torch import nn

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create

_HEAD_WORDS = ("lm_head", "embed_out", "embed_in", "wte", "wpe", "output", "classifier", "score", "head")


def _substring_filter(module: nn.Module, fqn: str) -> bool:
    if any(word in fqn for word in _HEAD_WORDS):
        return False
    return isinstance(module, nn.Linear) and module.in_features % 16 == 0 and module.out_features % 16 == 0


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    handlers = _reference_create(training_args)
    for handler in handlers:
        if hasattr(handler, "module_filter_func"):
            handler.module_filter_func = _substring_filter
    return handlers


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c9", "fails": ("C9d",), "passes": ("C9a", "C9b", "C9c", "C9e", "C9f")}
