"""The forms of compilation C12e names, each as the Accelerator keyword arguments and the model handed to
``prepare``: a ``torch.compile`` wrapper of the model or of an enclosing module, a module compiled in place, a block
compiled in place, accelerate's dynamo plugin (whole model or regional). No compiled model is ever called: a wrapper
compiles nothing until it runs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from torch import nn

from .models import mixed_model, tiny_llama


def compile_lazily(model: nn.Module) -> nn.Module:
    import torch

    compiled = torch.compile(model)  # lazy: nothing compiles until it runs, and it never runs here
    assert isinstance(compiled, nn.Module)
    return compiled


def compiled_in_place(model: nn.Module) -> nn.Module:
    model.compile()
    return model


def regional_dynamo_plugin() -> Any:
    from accelerate.utils import TorchDynamoPlugin

    return TorchDynamoPlugin(backend="inductor", use_regional_compilation=True)


def block_compiled_in_place() -> nn.Module:
    inner = mixed_model()
    inner.compile()
    return nn.Sequential(OrderedDict(body=inner, head=nn.Linear(64, 64)))


#: Each form of compilation C12e names: (Accelerator keyword arguments, the model handed to ``prepare``).
COMPILED_FORMS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[], nn.Module]]] = {
    "wrapper-of-the-model": (dict, lambda: compile_lazily(mixed_model())),
    "wrapper-of-an-enclosing-module": (dict, lambda: nn.Sequential(OrderedDict(body=compile_lazily(mixed_model())))),
    "compiled-in-place": (dict, lambda: compiled_in_place(mixed_model())),
    "block-compiled-in-place": (dict, block_compiled_in_place),
    "dynamo-plugin": (lambda: {"dynamo_backend": "inductor"}, mixed_model),
    "regional-dynamo-plugin": (lambda: {"dynamo_plugin": regional_dynamo_plugin()}, lambda: tiny_llama(layers=2)),
}
