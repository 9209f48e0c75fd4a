"""Broken on purpose (breaks C12e): verify looks for ``torch.compile`` in the prepared models only (a wrapper, a
module compiled in place) and never at the accelerator's dynamo plugin. accelerate keeps the model it was given in
``accelerator._models`` and wraps it with ``torch.compile`` only in what ``prepare`` returns, so every run compiled
that way (the HF Trainer's ``torch_compile=True``, ``Accelerator(dynamo_backend=...)``) is told to turn
``torch.compile`` on.
fp8ref's verify (its own notice silenced) plus that notice; the other four functions are fp8ref's."""

from __future__ import annotations

from typing import Any

from _c12e_notice import float8_layers, verify_with_notice

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import verify_fp8_status as _reference_verify


def _no_layer_in_a_compiled_module(accelerator: Any) -> bool:
    layers = list(float8_layers(accelerator, compiled_by_accelerator=False))  # the defect: no look at the plugin
    return bool(layers) and not any(compiled for _, compiled in layers)


verify_fp8_status = verify_with_notice(_reference_verify, _no_layer_in_a_compiled_module)
