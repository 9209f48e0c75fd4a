"""Broken on purpose (breaks C9d): the module filter compares the last FQN component with the head names in any
letter case (``name.lower() in HEADS``), so ``Output``, ``LM_HEAD`` and ``model.Lm_Head`` are kept in high
precision, though C9c names the excluded components exactly and C9d converts every other ``nn.Linear``.
Everything else is fp8ref's (its filter's size, type and LoRA rules included)."""

from __future__ import annotations

from typing import Any

from torch import nn

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import create_fp8_kwargs as _reference_create

_HEADS = ("lm_head", "embed_out", "embed_in", "wte", "wpe", "output", "classifier", "score", "head")


def _wrap(reference: Any) -> Any:
    def module_filter(module: nn.Module, fqn: str) -> bool:
        return bool(reference(module, fqn)) and fqn.rsplit(".", 1)[-1].lower() not in _HEADS

    return module_filter


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    handlers = _reference_create(training_args)
    for handler in handlers:
        if hasattr(handler, "module_filter_func"):
            handler.module_filter_func = _wrap(handler.module_filter_func)
    return handlers


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
#: C9 names in other letter cases.
EXPECTED = {
    "select": "c9 and not property",
    "fails": ("C9d",),
    "passes": ("C9a", "C9b", "C9c", "C9e", "C9f"),
}
