"""One LLaMA-Factory training run in a process of its own, started by ``test_real_client.py``.

Usage: ``lf_child.py --helpers {llamafactory,fp8ref} --config CONFIG.json --out RESULT.json``.

LLaMA-Factory's ``run_exp`` (its ``llamafactory.train.tuner``) runs the config, with LLaMA-Factory's own
``fp8_utils`` or with fp8ref's helpers swapped in by ``fp8ref.llamafactory.swap_helpers`` (what
``python -m fp8ref.llamafactory`` does before LLaMA-Factory's CLI). A ``TrainerCallback`` records what the test
judges: accelerate's mixed precision, every linear layer's class by FQN, which parameters changed in training;
the log records of fp8ref and of LLaMA-Factory's ``fp8_utils``; with fp8ref, its FP8 report after training; with
the stand-in Transformer Engine, the recipe its ``fp8_autocast`` received. A process per run: LLaMA-Factory, accelerate
and FP8 patches keep process-wide state.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"level": record.levelname, "logger": record.name, "message": record.getMessage()})


def linear_layers(model: Any) -> dict[str, str]:
    """FQN to class (``module.Class``) of every module whose class is named like a linear layer."""
    layers = {}
    for fqn, module in model.named_modules():
        cls = type(module)
        if cls.__name__ in ("Linear", "Float8Linear"):
            layers[fqn] = f"{cls.__module__}.{cls.__name__}"
    return layers


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--helpers", choices=("llamafactory", "fp8ref"), required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    config = json.loads(options.config.read_text())
    result: dict[str, Any] = {"helpers": options.helpers}
    records = Records()
    for name in ("fp8ref", "llamafactory.train.fp8_utils"):
        logging.getLogger(name).addHandler(records)
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        import torch
        from transformers import TrainerCallback

        swap = None
        if options.helpers == "fp8ref":
            from fp8ref.llamafactory import swap_helpers

            swap = swap_helpers()
            result["swapped_in"] = swap.modules

        before: dict[str, torch.Tensor] = {}

        class Recorder(TrainerCallback):  # type: ignore[misc]
            def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
                before.update({n: p.detach().float().clone() for n, p in model.named_parameters()})

            def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
                from accelerate.state import AcceleratorState

                result["mixed_precision"] = str(AcceleratorState().mixed_precision)
                result["linear"] = linear_layers(model)
                after = {n: p.detach().float() for n, p in model.named_parameters()}
                result["changed"] = sorted(n for n, p in before.items() if n in after and not torch.equal(p, after[n]))
                result["losses"] = [entry["loss"] for entry in state.log_history if "loss" in entry]

        if config.get("fp8_backend") == "te":
            # Real Transformer Engine imports its `fp8` submodule in `transformer_engine.pytorch`; accelerate 1.11 reads
            # it as an attribute (`te.fp8.check_mxfp8_support()` in apply_fp8_autowrap), the suite's stand-in has the
            # file but does not import it: imported here until the stand-in does.
            importlib.import_module("transformer_engine.pytorch.fp8")
        from llamafactory.train.tuner import run_exp

        run_exp(config, callbacks=[Recorder()])
        if swap is not None and swap.last_verify is not None:
            import fp8ref

            report = fp8ref.verify_fp8_status(*swap.last_verify)
            result["report"] = {"in_effect": report.in_effect, "summary": report.summary()}
        if "transformer_engine.pytorch" in sys.modules:
            te = importlib.import_module("transformer_engine.pytorch")
            recipes = [call["fp8_recipe"] for call in te.AUTOCAST_CALLS if call.get("enabled")]
            result["te_autocast_recipes"] = sorted(
                {
                    f"{type(r).__name__} {getattr(r.fp8_format, 'name', r.fp8_format)} "
                    f"amax_history_len={r.amax_history_len} amax_compute_algo={r.amax_compute_algo}"
                    for r in recipes
                    if r is not None
                }
            )
    except BaseException as exc:  # recorded for the test, which shows it; the exit status says it failed
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-5000:]
    result["logs"] = records.records
    options.out.write_text(json.dumps(result, indent=2))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
