"""A compact ``verify_fp8_status`` for the broken implementations of C12, each of which breaks one rule of it.

With :class:`VerifyDefect`'s defaults it follows C12 a to d: it warns when the accelerator has FP8 off, when the
prepared models hold no FP8 layer (torchao ``Float8Linear`` or a Transformer Engine module) or when one of their FP8
layers emulates; before any ``prepare`` it stays quiet and checks the layers after this accelerator's next
``prepare`` of a model (a wrapper on the instance, once). Each ``fp8broken_verify_*`` module sets one knob; its other
four functions are fp8ref's.

The broken modules use this instead of wrapping fp8ref's verify so that their defect stays the one they name
whatever fp8ref's own verify becomes. Not a module the suite is run against (no contract functions here).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("fp8broken.verify")

_PENDING = "_fp8broken_pending_args"


@dataclass(frozen=True)
class VerifyDefect:
    #: Whether Transformer Engine modules count as FP8 layers (False: only torchao's are seen).
    count_te: bool = True
    #: Whether the TE backend alone counts as FP8 in effect, without looking at the layers.
    trust_te_backend: bool = False
    #: When emulation is reported: ``any`` emulating layer; only when ``all`` FP8 layers emulate; or when the
    #: accelerator's ``handler`` config emulates (the layers' own configs unread).
    emulation: str = "any"
    #: How the check before ``prepare`` follows up: ``per-accelerator`` (right); ``second-call-cancels`` (a second
    #: verify before prepare takes the pending check back); ``one-slot`` (one process-wide pending check, on the
    #: ``Accelerator`` class, replaced or cleared by every verify, spent by whichever accelerator prepares next).
    follow_up: str = "per-accelerator"


def _fp8_layers(accelerator: Any, defect: VerifyDefect) -> tuple[int, int]:
    """(FP8 layers that do not emulate, FP8 layers that emulate) in the prepared models."""
    module = sys.modules.get("torchao.float8.float8_linear")
    float8 = getattr(module, "Float8Linear", None)
    real = emulated = 0
    for model in getattr(accelerator, "_models", None) or []:
        for layer in model.modules():
            if float8 is not None and isinstance(layer, float8):
                if getattr(layer.config, "emulate", False):
                    emulated += 1
                else:
                    real += 1
            elif defect.count_te and type(layer).__module__.split(".", 1)[0] == "transformer_engine":
                real += 1
    return real, emulated


def _problem(accelerator: Any, defect: VerifyDefect) -> str | None:
    backend = getattr(accelerator, "fp8_backend", None)
    if defect.trust_te_backend and str(getattr(backend, "value", backend)) == "TE":
        return None
    real, emulated = _fp8_layers(accelerator, defect)
    if defect.emulation == "handler":
        config = getattr(getattr(accelerator, "ao_recipe_handler", None), "config", None)
        if getattr(config, "emulate", False):
            return "the torchao recipe emulates float8: no float8 matmul runs"
        real, emulated = real + emulated, 0
    elif defect.emulation == "all":
        if emulated and not real:
            return "every FP8 layer emulates float8: no float8 matmul runs"
        real, emulated = real + emulated, 0
    elif emulated:
        return f"{emulated} FP8 layer(s) emulate float8: no float8 matmul runs there"
    if real == 0:
        return "the prepared models hold no FP8 layer"
    return None


def _check(accelerator: Any, defect: VerifyDefect) -> None:
    problem = _problem(accelerator, defect)
    if problem:
        logger.warning("FP8 training was requested but is not in effect: %s", problem)


# --------------------------------------------------------------------------- the follow-up after prepare


def _follow_this_accelerator(accelerator: Any, defect: VerifyDefect) -> None:
    namespace = vars(accelerator)
    if _PENDING in namespace:
        if defect.follow_up == "second-call-cancels":
            del namespace[_PENDING]
            del accelerator.prepare
        return
    original = accelerator.prepare

    def prepare(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if _PENDING in vars(accelerator) and getattr(accelerator, "_models", None):
            del vars(accelerator)[_PENDING]
            del accelerator.prepare
            _check(accelerator, defect)
        return result

    namespace[_PENDING] = True
    accelerator.prepare = prepare


_SLOT: dict[str, bool] = {"pending": False}


def _follow_in_one_slot(defect: VerifyDefect) -> None:
    from accelerate import Accelerator

    _SLOT["pending"] = True
    if getattr(Accelerator.prepare, "_fp8broken_slot", False):
        return
    original = Accelerator.prepare

    def prepare(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if _SLOT["pending"] and getattr(self, "_models", None):
            _SLOT["pending"] = False
            _check(self, defect)
        return result

    prepare._fp8broken_slot = True  # type: ignore[attr-defined]
    Accelerator.prepare = prepare


def make_verify(defect: VerifyDefect) -> Callable[[Any, Any], None]:
    def verify_fp8_status(accelerator: Any, training_args: Any) -> None:
        if defect.follow_up == "one-slot":
            _SLOT["pending"] = False  # every verify replaces the one pending check
        if not getattr(training_args, "fp8", False):
            return
        if not getattr(accelerator, "fp8_enabled", False):
            logger.warning("FP8 training was requested but the Accelerator does not have FP8 enabled")
            return
        if getattr(accelerator, "_models", None):
            _check(accelerator, defect)
        elif defect.follow_up == "one-slot":
            _follow_in_one_slot(defect)
        else:
            _follow_this_accelerator(accelerator, defect)

    return verify_fp8_status
