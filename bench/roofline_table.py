"""Print the roofline predictions of fp8ref.roofline for Llama-3 projections as a markdown table.

Usage: ``python -m bench.roofline_table [--tokens 8192] [--model 8b|70b] [--mode compiled|eager|both]``

``--mode both`` prints the README's table: compiled and eager side by side for rowwise and tensorwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fp8ref import roofline

GPUS = ("h100-sxm", "h200")
#: The README's rows: the projections that share a shape.
README_GROUPS = (("q, o", ("q_proj", "o_proj")), ("k, v", ("k_proj", "v_proj")), ("gate, up, down", ("gate_proj",)))
README_RECIPES = ("rowwise", "tensorwise")
GPU_TITLES = {"h100-sxm": "H100 SXM", "h200": "H200"}


def _whole(arch: roofline.LlamaShape, tokens: int, recipe: str, gpu: str, mode: str) -> float:
    """The seven projections together: the sum of their bf16 times over the sum of their FP8 times."""
    preds = [
        roofline.predict(tokens, k, n, recipe, gpu, mode) for k, n in roofline.llama_projection_shapes(arch).values()
    ]
    return sum(p.bf16_time_s for p in preds) / sum(p.fp8_time_s for p in preds)


def table(arch: roofline.LlamaShape, tokens: int, mode: str = "compiled") -> str:
    recipes = list(roofline.RECIPES)
    head = "| projection | K x N | " + " | ".join(f"{g} {r}" for g in GPUS for r in recipes) + " |"
    lines = [
        f"Predicted FP8 speedup bound over bf16, {arch.name}, M = {tokens} tokens, linear forward + backward, {mode}:",
        "",
        head,
        "|" + "---|" * (2 + len(GPUS) * len(recipes)),
    ]
    for name, (k, n) in roofline.llama_projection_shapes(arch).items():
        cells = [f"{roofline.predict(tokens, k, n, r, g, mode).speedup:.2f}x" for g in GPUS for r in recipes]
        lines.append(f"| {name} | {k} x {n} | " + " | ".join(cells) + " |")
    whole = [f"{_whole(arch, tokens, r, g, mode):.2f}x" for g in GPUS for r in recipes]
    lines.append("| all seven (sum of times) | | " + " | ".join(whole) + " |")
    return "\n".join(lines)


def readme_table(arch: roofline.LlamaShape = roofline.LLAMA3_8B, tokens: int = 8192) -> str:
    """The README's table: each GPU and recipe with its compiled and its eager bound side by side."""
    shapes = roofline.llama_projection_shapes(arch)
    columns = [(g, r) for g in GPUS for r in README_RECIPES]
    head = "| projection (K x N) | " + " | ".join(f"{GPU_TITLES[g]} {r}: compiled / eager" for g, r in columns) + " |"
    lines = [head, "|---|" + "---|" * len(columns)]
    for label, names in README_GROUPS:
        k, n = shapes[names[0]]
        cells = []
        for g, r in columns:
            compiled, eager = (roofline.predict(tokens, k, n, r, g, mode).speedup for mode in ("compiled", "eager"))
            cells.append(f"{compiled:.2f}x / {eager:.2f}x")
        lines.append(f"| {label} ({k} x {n}) | " + " | ".join(cells) + " |")
    whole = [
        f"{_whole(arch, tokens, r, g, 'compiled'):.2f}x / {_whole(arch, tokens, r, g, 'eager'):.2f}x"
        for g, r in columns
    ]
    lines.append("| all seven | " + " | ".join(whole) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.roofline_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--model", choices=("8b", "70b"), default="8b")
    parser.add_argument("--mode", choices=("compiled", "eager", "both"), default="compiled")
    args = parser.parse_args(argv)
    arch = roofline.LLAMA3_8B if args.model == "8b" else roofline.LLAMA3_70B
    print(readme_table(arch, args.tokens) if args.mode == "both" else table(arch, args.tokens, args.mode))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
