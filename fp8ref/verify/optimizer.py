"""The stale-optimizer check: an optimizer that holds weights the float8 conversion replaced."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from fp8ref.deepspeed_check import runs_deepspeed


def stale_optimizer_params(accelerator: Any, models: list[nn.Module]) -> int:
    """How many parameters the prepared optimizers hold that no prepared model holds any more.

    Not asked under DeepSpeed: its ZeRO optimizers hold flat fp32 partitions of their own (built by
    ``deepspeed.initialize``, after accelerate's float8 conversion), never the model's parameters.
    """
    if runs_deepspeed(accelerator):
        return 0
    in_models = {id(param) for model in models for param in model.parameters()}
    stale = 0
    for optimizer in getattr(accelerator, "_optimizers", None) or []:
        inner = getattr(optimizer, "optimizer", optimizer)
        for group in getattr(inner, "param_groups", []):
            stale += sum(id(param) not in in_models for param in group["params"])
    return stale
