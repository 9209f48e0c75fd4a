"""Print the roofline predictions of fp8ref.roofline for Llama-3 projections as a markdown table.

Usage: ``python -m bench.roofline_table [--tokens 8192] [--model 8b|70b]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fp8ref import roofline

GPUS = ("h100-sxm", "h200")


def table(arch: roofline.LlamaShape, tokens: int) -> str:
    recipes = list(roofline.RECIPES)
    head = "| projection | K x N | " + " | ".join(f"{g} {r}" for g in GPUS for r in recipes) + " |"
    lines = [
        f"Predicted FP8 speedup bound over bf16, {arch.name}, M = {tokens} tokens, linear forward + backward:",
        "",
        head,
        "|" + "---|" * (2 + len(GPUS) * len(recipes)),
    ]
    for name, (k, n) in roofline.llama_projection_shapes(arch).items():
        cells = [f"{roofline.predict(tokens, k, n, r, g).speedup:.2f}x" for g in GPUS for r in recipes]
        lines.append(f"| {name} | {k} x {n} | " + " | ".join(cells) + " |")
    whole = []
    for g in GPUS:
        for r in recipes:
            preds = [roofline.predict(tokens, k, n, r, g) for k, n in roofline.llama_projection_shapes(arch).values()]
            whole.append(f"{sum(p.bf16_time_s for p in preds) / sum(p.fp8_time_s for p in preds):.2f}x")
    lines.append("| all seven (sum of times) | | " + " | ".join(whole) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.roofline_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--model", choices=("8b", "70b"), default="8b")
    args = parser.parse_args(argv)
    arch = roofline.LLAMA3_8B if args.model == "8b" else roofline.LLAMA3_70B
    print(table(arch, args.tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
