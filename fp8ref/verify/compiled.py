"""Whether the FP8 layers run under ``torch.compile`` (contract C12e), and what to say when they do not.

torchao's float8 layers compute their scales and casts as separate eager kernels unless they run inside a
compiled module; float8 training is then slower than bf16 at most sizes (pytorch/ao#685). A layer runs
compiled when a module that holds it (the layer itself included) is

* a ``torch.compile`` wrapper (``torch._dynamo.eval_frame.OptimizedModule``): ``torch.compile(model)``,
  accelerate's ``prepare`` with a dynamo plugin, and accelerate's regional compilation (``compile_regions``
  wraps each repeated block);
* compiled in place with ``nn.Module.compile()`` (accelerate's regional compilation under FSDP2 and
  DeepSpeed);
* a DeepSpeed engine whose ``compile()`` ran (``engine.is_compiled``), which accelerate calls at ``prepare``
  under DeepSpeed with a dynamo plugin.

Before ``prepare`` only the accelerator's dynamo plugin can tell: :func:`compiles_at_prepare`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import torch.nn as nn

from fp8ref.deepspeed_check import runs_deepspeed

#: The three switches of C12e, by the user's setup.
SWITCH_TRAINER = "set torch_compile=True in the TrainingArguments (LLaMA-Factory: torch_compile: true)"
SWITCH_ACCELERATOR = (
    'build the Accelerator with dynamo_backend="inductor" (or dynamo_plugin=TorchDynamoPlugin(backend="inductor"), '
    "or ACCELERATE_DYNAMO_BACKEND=inductor in the environment before it is built)"
)
SWITCH_MODEL = "compile the model: model = torch.compile(model)"


def _dynamo_eval_frame() -> Any:
    """``torch._dynamo.eval_frame`` if something imported it; nothing is imported here (a model can only
    have been compiled once dynamo was imported)."""
    return sys.modules.get("torch._dynamo.eval_frame")


def is_compiled_module(module: Any) -> bool:
    """Whether ``module`` itself is compiled: a ``torch.compile`` wrapper, a module compiled in place with
    ``nn.Module.compile()``, or a compiled DeepSpeed engine. A wrapper made by ``torch._dynamo.disable`` is
    not compiled."""
    eval_frame = _dynamo_eval_frame()
    if eval_frame is not None and isinstance(module, eval_frame.OptimizedModule):
        disable = getattr(eval_frame, "DisableContext", None)
        return not (disable is not None and isinstance(getattr(module, "dynamo_ctx", None), disable))
    if isinstance(module, nn.Module) and getattr(module, "_compiled_call_impl", None) is not None:
        return True
    return getattr(module, "is_compiled", False) is True  # deepspeed.DeepSpeedEngine.is_compiled


def modules_run_compiled(model: nn.Module) -> set[int]:
    """The ids of the modules of ``model`` that run inside a compiled module (a compiled one included)."""
    inside: set[int] = set()

    def visit(module: nn.Module, compiled: bool) -> None:
        compiled = compiled or is_compiled_module(module)
        if compiled:
            inside.add(id(module))
        for child in module.children():
            visit(child, compiled)

    visit(model, False)
    return inside


def compiles_at_prepare(accelerator: Any) -> bool:
    """Whether the accelerator's dynamo plugin compiles each model at ``prepare`` (``TorchDynamoPlugin`` with a
    backend other than ``no``: ``Accelerator(dynamo_backend=...)``, the HF Trainer's ``torch_compile=True``,
    or ``ACCELERATE_DYNAMO_BACKEND``)."""
    plugin = getattr(getattr(accelerator, "state", None), "dynamo_plugin", None)
    backend = getattr(plugin, "backend", None)
    if backend is None:
        return False
    return str(getattr(backend, "value", backend)).upper() != "NO"


def regional_compilation(accelerator: Any) -> bool:
    """Whether the accelerator's dynamo plugin compiles the repeated blocks only (``use_regional_compilation``)."""
    plugin = getattr(getattr(accelerator, "state", None), "dynamo_plugin", None)
    return bool(getattr(plugin, "use_regional_compilation", False))


def compiled_by_accelerator(accelerator: Any, raw_models: Iterable[Any]) -> bool:
    """Whether the accelerator compiled what it prepared: its dynamo plugin compiles at ``prepare`` (outside
    DeepSpeed, where accelerate always does), or a prepared object is itself compiled (DeepSpeed's engine)."""
    if any(is_compiled_module(model) for model in raw_models):
        return True
    deepspeed = runs_deepspeed(accelerator)
    return compiles_at_prepare(accelerator) and not deepspeed


def compile_switch(accelerator: Any, training_args: Any) -> str:
    """How to turn ``torch.compile`` on in the user's setup: the HF Trainer (arguments with a ``torch_compile``
    field), a plain accelerate ``Accelerator``, or anything else."""
    if hasattr(training_args, "torch_compile"):
        return SWITCH_TRAINER
    if hasattr(getattr(accelerator, "state", None), "dynamo_plugin"):
        return SWITCH_ACCELERATOR
    return SWITCH_MODEL


def eager_notice(eager_layers: int, switch: str) -> str:
    """The C12e notice, short: torchao float8 layers in effect, none of them compiled."""
    return (
        f"FP8 is in effect, but none of its {eager_layers} torchao float8 layer(s) runs under torch.compile, and "
        f"eager float8 is slower than bf16 at most sizes (pytorch/ao#685). Turn it on: {switch}; "
        "`fp8ref plan` bounds both modes. (A model compiled after prepare() is not seen here.)"
    )


def te_compile_refusal() -> str:
    """Transformer Engine refuses ``DelayedScaling`` under ``torch.compile``: the warning before the first step."""
    return (
        "Transformer Engine with torch.compile: the model is compiled as a whole (or will be, by the "
        "accelerator's dynamo plugin at prepare()), so its forward enters TE's fp8_autocast with a DelayedScaling "
        "recipe inside the compiled code. Transformer Engine refuses that: from TE 2.15 "
        "(NVIDIA/TransformerEngine#2759) check_recipe_support raises RuntimeError 'DelayedScaling is not supported "
        "under torch.compile' at the first forward. Turn torch.compile off for this run (torch_compile=False, or "
        "Accelerator(dynamo_backend='no')), or train with torchao (fp8_backend='torchao'), which needs "
        "torch.compile to pay"
    )
