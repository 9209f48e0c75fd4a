"""The HF ``Trainer`` runs of C12d and C12e: verify called where LLaMA-Factory calls it (at the end of
``Trainer.__init__``), then ``train()`` observed for the check verify left for the next ``prepare``.

Each run starts from accelerate's reset state and a clean FP8 environment, and puts the environment back after.
The model is a one-layer :func:`.models.tiny_llama` of the given sizes, on :class:`.trainer.FixedBatch` (8 rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .env import env_snapshot, fp8_env_prefixes
from .isolation import reset_accelerate_state
from .models import tiny_llama
from .trainer import FixedBatch, configure_and_patch
from .verify_outcome import Outcome, call_verify, observe


@dataclass
class VerifyInTrainer:
    """``at_init``: verify at the end of ``Trainer.__init__``; ``during_train``: what ``train()`` did (its
    records and exception); ``trainer``: the Trainer, after."""

    at_init: Outcome
    during_train: Outcome
    trainer: Any

    def fp8_layers(self) -> int:
        """How many torchao ``Float8Linear`` layers the trained model holds."""
        from torchao.float8.float8_linear import Float8Linear

        model = self.trainer.model
        assert model is not None
        return sum(isinstance(m, Float8Linear) for m in model.modules())


class StopBeforeTheFirstStep(Exception):
    """Raised by a callback once the Trainer has prepared its model: no compiled model is ever called."""


def _stop_at_train_begin() -> Any:
    from transformers import TrainerCallback

    class StopAtTrainBegin(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise StopBeforeTheFirstStep

    return StopAtTrainBegin()


def verify_in_trainer(
    impl: Any,
    arguments: Callable[[], Any],
    *,
    hidden: int | None = None,
    intermediate: int | None = None,
    stop_before_the_first_step: bool = False,
) -> VerifyInTrainer:
    """configure, patch, ``Trainer(...)`` with the training arguments ``arguments()`` makes (inside the clean
    environment), verify, then ``train()``; ``stop_before_the_first_step``: ``train()`` only up to the point where it
    has prepared the model (stopped in ``on_train_begin``, before any forward)."""
    from transformers import Trainer

    sizes: dict[str, Any] = {
        name: size for name, size in (("hidden", hidden), ("intermediate", intermediate)) if size is not None
    }
    callbacks = [_stop_at_train_begin()] if stop_before_the_first_step else []
    reset_accelerate_state()
    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        args = arguments()
        configure_and_patch(impl, args)
        model = tiny_llama(**sizes, layers=1)
        trainer = Trainer(model=model, args=args, train_dataset=FixedBatch(count=8), callbacks=callbacks)
        at_init = call_verify(impl, trainer.accelerator, args)
        with observe() as during_train:
            trainer.train()
    if stop_before_the_first_step:
        if not isinstance(during_train.error, StopBeforeTheFirstStep):
            raise AssertionError(f"train() did not reach on_train_begin: {during_train.explain_error()}")
        during_train.error = None
    return VerifyInTrainer(at_init, during_train, trainer)
