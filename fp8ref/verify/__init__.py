"""Check that FP8 is really in effect, and say what was converted.

``verify_fp8_status`` may be called after ``accelerator.prepare`` or before it (trainers call it at the end of
``Trainer.__init__``; the model is prepared later, in ``train()``). Before ``prepare`` with FP8 enabled on the
accelerator it stays quiet and checks the layers after the accelerator's next ``prepare`` of a model.

One concern per module: :mod:`.report` (the report), :mod:`.layers` (which modules are FP8 layers, which
emulate), :mod:`.compiled` (whether they run under ``torch.compile``, contract C12e), :mod:`.recipe` (the recipe
in effect, and the one the Transformer Engine forward runs with), :mod:`.reasons` (why ``fp8_enabled`` is false),
:mod:`.optimizer` (the stale-optimizer check), :mod:`.deferred` (the follow-up after the next ``prepare``),
:mod:`.status` (inspect and verify).
"""

from fp8ref.verify.layers import config_emulates, emulates_float8, is_fp8_layer
from fp8ref.verify.recipe import TE_RECIPE_FIELDS, TERecipe
from fp8ref.verify.report import (
    STATE_IN_EFFECT,
    STATE_NOT_IN_EFFECT,
    STATE_NOT_REQUESTED,
    STATE_PENDING,
    FP8Report,
)
from fp8ref.verify.status import inspect_fp8_status, verify_fp8_status

__all__ = [
    "STATE_IN_EFFECT",
    "STATE_NOT_IN_EFFECT",
    "STATE_NOT_REQUESTED",
    "STATE_PENDING",
    "TE_RECIPE_FIELDS",
    "FP8Report",
    "TERecipe",
    "config_emulates",
    "emulates_float8",
    "inspect_fp8_status",
    "is_fp8_layer",
    "verify_fp8_status",
]
