"""FP8 under DeepSpeed: the one combination fp8ref refuses, the FSDP float8 all-gather (clause C16c).

``fp8_enable_fsdp_float8_all_gather`` makes torchao wrap every converted weight for FSDP2's float8 all-gather
(tensorwise scaling, ``WeightWithDynamicFloat8CastTensor``). DeepSpeed ZeRO shards parameters its own way and
never runs that all-gather; accelerate converts the model to float8 before ``deepspeed.initialize``, and with
the flag on that fails deep inside torch (``RuntimeError: _apply(): Couldn't swap Float8Linear.weight``).
fp8ref says so up front, in two places:

- :func:`~fp8ref.environment.configure_fp8_environment`, when the training arguments carry a DeepSpeed
  config (``TrainingArguments(deepspeed=...)``): the earliest point, before any variable is written;
- the patched ``Accelerator.__init__`` (:func:`~fp8ref.patch.patch_accelerator_for_fp8`), when the
  ``Accelerator`` is built with a DeepSpeed plugin (the HF ``Trainer`` passes ``args.deepspeed_plugin``) or
  with ``ACCELERATE_USE_DEEPSPEED=true`` (``accelerate launch`` with a DeepSpeed config): the first point
  where DeepSpeed is known for sure whatever the arguments say, and still before ``prepare`` converts the
  model, so before the first training step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fp8ref.errors import FP8ConfigError

ALL_GATHER_FLAG = "fp8_enable_fsdp_float8_all_gather"
USE_DEEPSPEED_VAR = "ACCELERATE_USE_DEEPSPEED"


def deepspeed_requested(training_args: Any = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the run uses DeepSpeed: ``training_args.deepspeed`` is set (a config dict or file), or the
    environment says ``ACCELERATE_USE_DEEPSPEED=true``."""
    if training_args is not None and getattr(training_args, "deepspeed", None):
        return True
    env = os.environ if environ is None else environ
    return env.get(USE_DEEPSPEED_VAR, "false").strip().lower() in ("1", "true", "yes", "on")


def runs_deepspeed(accelerator: Any) -> bool:
    """Whether ``accelerator`` runs under DeepSpeed (its ``distributed_type`` is ``DistributedType.DEEPSPEED``)."""
    return str(getattr(accelerator, "distributed_type", "")).rsplit(".", 1)[-1] == "DEEPSPEED"


def all_gather_under_deepspeed_error(where: str) -> FP8ConfigError:
    return FP8ConfigError(
        f"{ALL_GATHER_FLAG}=True cannot be used with DeepSpeed ({where}): the float8 all-gather is an FSDP2 "
        "feature, and DeepSpeed ZeRO shards the weights itself (left alone, prepare() fails inside torch with "
        f'"Couldn\'t swap Float8Linear.weight"). Fix: set {ALL_GATHER_FLAG}=False (fp8 with DeepSpeed then uses '
        "the rowwise recipe), or train with FSDP2 instead of DeepSpeed to keep the float8 all-gather"
    )


def check_deepspeed_compatible(all_gather: bool, *, deepspeed: bool, where: str) -> None:
    """Raise :class:`FP8ConfigError` when the FSDP float8 all-gather is requested under DeepSpeed."""
    if all_gather and deepspeed:
        raise all_gather_under_deepspeed_error(where)
