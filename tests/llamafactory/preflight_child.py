"""One preflight-then-train pair in a process of its own, started by ``test_preflight_agreement.py``.

Usage: ``preflight_child.py --helpers {llamafactory,fp8ref} --config CONFIG.yaml --out RESULT.json``.

First ``fp8ref.preflight.preflight`` judges the config (with ``llamafactory.train.fp8_utils`` or with ``fp8ref``, in
LLaMA-Factory's call order); then, in the same process (so that anything preflight left behind would show in the run),
LLaMA-Factory's ``run_exp`` trains on it, with its own ``fp8_utils`` or with fp8ref's helpers swapped in as
``python -m fp8ref.llamafactory`` swaps them. The accelerator that prepared the model is read after ``train()``
(``fp8ref.preflight.agreement.observed``). Both go to RESULT.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

HELPERS = {"llamafactory": "llamafactory.train.fp8_utils", "fp8ref": "fp8ref"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--helpers", choices=tuple(HELPERS), required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    result: dict[str, Any] = {"helpers": options.helpers}
    try:
        from fp8ref.preflight import preflight
        from fp8ref.preflight.agreement import observed, predicted

        report = preflight(str(options.config), helpers=HELPERS[options.helpers])
        result["predicted"] = predicted(report).to_dict()
        result["verdict"] = report.verdict()
        result["report"] = report.render()
        from accelerate import Accelerator

        preparing: list[Any] = []
        original_prepare = Accelerator.prepare

        def prepare(self: Any, *args: Any, **kwargs: Any) -> Any:
            preparing.append(self)
            return original_prepare(self, *args, **kwargs)

        Accelerator.prepare = prepare  # type: ignore[method-assign]
        if options.helpers == "fp8ref":
            from fp8ref.llamafactory import swap_helpers

            swap_helpers()
        config = yaml.safe_load(options.config.read_text())
        if config.get("fp8_backend") == "te":  # see lf_child.py: accelerate 1.11 reads te.fp8 as an attribute
            importlib.import_module("transformer_engine.pytorch.fp8")
        from llamafactory.train.tuner import run_exp

        run_exp(config)
        result["observed"] = observed(preparing[-1]).to_dict()
    except BaseException as exc:  # recorded for the test, which shows it; the exit status says it failed
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-5000:]
    options.out.write_text(json.dumps(result, indent=2))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
