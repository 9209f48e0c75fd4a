"""Script that ``tests/fp8ref/test_accelerate_launch.py`` runs under ``accelerate launch --config_file ...``.

Usage: ``accelerate_fp8.py --out RESULT.json --mode args --mode env`` (each mode in turn, each from the state
the launcher left: one launch pays the imports once).

- ``args``: ``configure_fp8_environment(args)`` then ``patch_accelerator_for_fp8()``, as a training script
  with its own FP8 arguments does;
- ``env``: only ``patch_accelerator_for_fp8()``, which reads the request from the environment that
  ``accelerate launch`` set from the config file.

Then ``Accelerator()``, ``prepare(model, optimizer)``, one training step, and ``verify_fp8_status``; for each mode the
report, the loss and the launch environment this process saw are written to ``RESULT.json`` (by mode). Between
modes the suite's isolation puts back the environment, accelerate's state and the patched ``Accelerator``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 64)
        self.odd = nn.Linear(64, 40)
        self.lm_head = nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.fc2(torch.relu(self.fc1(x))))
        out: torch.Tensor = self.lm_head(hidden) + self.odd(hidden)[..., :32]
        return out


def run_mode(mode: str) -> dict[str, Any]:
    """One mode from the launcher's state: its result (the launch environment, the run, verify's report)."""
    launch_env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("ACCELERATE_", "FP8_"))}
    from accelerate import Accelerator

    import fp8ref

    args = types.SimpleNamespace(fp8=True, fp8_backend="torchao", fp8_enable_fsdp_float8_all_gather=False)
    if mode == "args":
        fp8ref.configure_fp8_environment(args)
    fp8ref.patch_accelerator_for_fp8()

    accelerator = Accelerator()
    torch.manual_seed(0)
    model = Tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    x, y = torch.randn(32, 64), torch.randn(32, 32)
    loss = nn.functional.mse_loss(model(x), y)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()

    report = fp8ref.verify_fp8_status(accelerator, args)
    print(f"[{mode}] {report.summary()}")
    return {
        "launch_env": launch_env,
        "distributed_type": str(accelerator.distributed_type),
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        "loss": float(loss.detach()),
        "report": report.to_dict(),
        "summary": report.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", choices=("args", "env"), action="append", required=True)
    options = parser.parse_args(argv)
    from fp8ref_conformance.kit.isolation import isolated

    results: dict[str, dict[str, Any]] = {}
    for mode in options.mode:
        with isolated():
            results[mode] = run_mode(mode)
    options.out.write_text(json.dumps(results, indent=2))
    ok = all(r["report"]["in_effect"] and math.isfinite(r["loss"]) for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
