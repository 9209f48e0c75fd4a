"""The follow-up of a verify before ``prepare`` (contract C12d): the layer check runs after the accelerator's
next ``prepare`` of a model."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fp8ref.verify.layers import prepared_models

logger = logging.getLogger("fp8ref.verify")

#: ``verify(accelerator, training_args, strict, given)``: the check to run once a model is prepared; ``given``
#: are the notices the verify before prepare already logged (not repeated).
VerifyFunction = Callable[[Any, Any, bool, frozenset[str]], object]

# Instance attribute of an Accelerator whose layers verify checks after its next prepare of a model.
_PENDING_ATTR = "_fp8ref_pending_verify"
_ABSENT = object()


@dataclass
class _PendingCheck:
    """The layer check that a verify before ``prepare`` left for the accelerator's next ``prepare``."""

    training_args: Any
    strict: bool
    given: frozenset[str]
    wrapper: Callable[..., Any]
    saved: Any  # the accelerator's own instance attribute ``prepare``, or _ABSENT


def stop_following(accelerator: Any) -> _PendingCheck | None:
    """Forget the pending check and put back what the wrapper replaced (unless someone wrapped it since)."""
    namespace = getattr(accelerator, "__dict__", None)
    if not isinstance(namespace, dict):
        return None
    pending: _PendingCheck | None = namespace.pop(_PENDING_ATTR, None)
    if pending is not None and namespace.get("prepare") is pending.wrapper:
        if pending.saved is _ABSENT:
            del accelerator.prepare
        else:
            accelerator.prepare = pending.saved
    return pending


def follow_up_after_prepare(
    accelerator: Any, training_args: Any, strict: bool, verify: VerifyFunction, given: frozenset[str] = frozenset()
) -> None:
    """Run ``verify`` once the accelerator's ``prepare`` has prepared a model.

    Wraps ``prepare`` on this accelerator instance only (the class is left alone), once: a second verify
    before ``prepare`` only updates the arguments. The wrapper runs the original ``prepare`` untouched (with
    DeepSpeed and FSDP too), and after the first call that leaves a prepared model on the accelerator
    (``Trainer.train`` prepares its dataloader first) it puts the original back and runs ``verify``, which
    warns, or raises under ``strict``.
    """
    namespace = getattr(accelerator, "__dict__", None)
    if not isinstance(namespace, dict) or not callable(getattr(accelerator, "prepare", None)):
        logger.info("fp8ref: %r has no prepare() to follow: call verify_fp8_status after prepare", accelerator)
        return
    pending: _PendingCheck | None = namespace.get(_PENDING_ATTR)
    if pending is not None:
        pending.training_args, pending.strict, pending.given = training_args, strict, pending.given | given
        return
    original = accelerator.prepare
    saved = namespace.get("prepare", _ABSENT)

    @functools.wraps(original)
    def prepare(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if vars(accelerator).get(_PENDING_ATTR) is not None and prepared_models(accelerator):
            check = stop_following(accelerator)
            if check is not None:
                verify(accelerator, check.training_args, check.strict, check.given)
        return result

    setattr(accelerator, _PENDING_ATTR, _PendingCheck(training_args, strict, given, prepare, saved))
    accelerator.prepare = prepare
