"""Support of the C12e broken implementations (not an implementation itself): fp8ref's verify with its own
``torch.compile`` notice silenced, and a notice of the broken module's own, judged by a rule with one defect.

fp8ref gains its C12e notice in parallel with these modules; silencing it (a filter on fp8ref's loggers that drops
every record naming ``torch.compile``) keeps each broken module's defect the only C12e behaviour it has, before and
after that lands.
"""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

logger = logging.getLogger("fp8broken.c12e")
NOTICE = (
    "FP8 is in effect, but its torchao float8 layers run eagerly (no torch.compile), where float8 is slower than "
    "bf16: turn torch.compile on (torch_compile=True in the TrainingArguments, Accelerator(dynamo_backend=...), or "
    "torch.compile(model))"
)


class _DropCompileNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "torch.compile" not in record.getMessage()


_FILTER = _DropCompileNotices()


def silence_fp8ref_compile_notices() -> None:
    """Add the filter to every logger of an imported fp8ref module (a logger filter applies where a record is made)."""
    for name in [n for n in sys.modules if n == "fp8ref" or n.startswith("fp8ref.")]:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


def float8_layers(accelerator: Any, compiled_by_accelerator: bool) -> Iterator[tuple[nn.Module, bool]]:
    """Every non-emulating torchao ``Float8Linear`` of the prepared models, and whether it runs inside a module
    that is a ``torch.compile`` wrapper or compiled in place (or everything is, when the accelerator compiles)."""

    def walk(module: nn.Module, compiled: bool) -> Iterator[tuple[nn.Module, bool]]:
        compiled = compiled or hasattr(module, "_orig_mod") or getattr(module, "_compiled_call_impl", None) is not None
        if type(module).__name__ == "Float8Linear" and not getattr(module.config, "emulate", False):
            yield module, compiled
        for child in module.children():
            yield from walk(child, compiled)

    for model in getattr(accelerator, "_models", []):
        yield from walk(model, compiled_by_accelerator)


def compiles_at_prepare(accelerator: Any) -> bool:
    backend = getattr(getattr(getattr(accelerator, "state", None), "dynamo_plugin", None), "backend", None)
    return backend is not None and str(getattr(backend, "value", backend)).upper() != "NO"


_WAITING: weakref.WeakSet[Any] = weakref.WeakSet()


def verify_with_notice(reference: Callable[[Any, Any], Any], says_eager: Callable[[Any], bool]) -> Callable[..., Any]:
    """fp8ref's ``verify_fp8_status`` (compile notices silenced), then the notice whenever ``says_eager(acc)``: at
    once after prepare, or after the accelerator's next prepare of a model when nothing is prepared yet."""

    def judge(accelerator: Any) -> None:
        if says_eager(accelerator):
            logger.warning(NOTICE)

    def follow_up(accelerator: Any) -> None:
        if accelerator in _WAITING:
            return
        _WAITING.add(accelerator)
        unpatched = accelerator.prepare

        def prepare(*args: Any, **kwargs: Any) -> Any:
            out = unpatched(*args, **kwargs)
            if accelerator in _WAITING and getattr(accelerator, "_models", []):
                _WAITING.discard(accelerator)
                del accelerator.prepare
                judge(accelerator)
            return out

        accelerator.prepare = prepare

    def verify_fp8_status(accelerator: Any, training_args: Any) -> Any:
        silence_fp8ref_compile_notices()
        result = reference(accelerator, training_args)
        if getattr(training_args, "fp8", False) and getattr(accelerator, "fp8_enabled", False):
            if getattr(accelerator, "_models", []):
                judge(accelerator)
            else:
                follow_up(accelerator)
        return result

    return verify_fp8_status
