"""Support of the C16d broken implementation (not an implementation itself): undo, after every ``Accelerator``
is built, whatever handed the Transformer Engine recipe to the handler accelerate's DeepSpeed path reads.

accelerate 1.15's ``_prepare_deepspeed`` wraps the forward with ``apply_fp8_autowrap(model, self.fp8_recipe_handler)``;
a ``TERecipeKwargs`` sits in ``te_recipe_handler``, where that path never looks. An implementation that gets C16d right
puts the recipe (as the deprecated ``FP8RecipeKwargs``) in ``fp8_recipe_handler`` under DeepSpeed; this takes it out
again there, so that TE's default recipe runs, as it does for an implementation that returns ``TERecipeKwargs`` and
does nothing more.
"""

from __future__ import annotations

import functools
from typing import Any

_MARKER = "_broken_drops_te_recipe"


def drop_te_recipe_under_deepspeed() -> None:
    """Wrap the current ``Accelerator.__init__`` (once; the suite's isolation puts the class back)."""
    from accelerate import Accelerator

    current = vars(Accelerator)["__init__"]
    if getattr(current, _MARKER, False):
        return

    @functools.wraps(current)  # keeps the implementation's own markers: its second patch sees itself installed
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        current(self, *args, **kwargs)
        deepspeed = str(getattr(self, "distributed_type", "")).rsplit(".", 1)[-1] == "DEEPSPEED"
        if deepspeed and getattr(self, "te_recipe_handler", None) is not None:
            self.fp8_recipe_handler = None

    setattr(__init__, _MARKER, True)
    Accelerator.__init__ = __init__  # type: ignore[method-assign]
