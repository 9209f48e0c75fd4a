"""Published float8 training measurements beside the bound ``fp8ref.roofline`` (and ``fp8ref plan``) gives for
the same setup, in the mode each was measured in. ``docs/does-it-pay.md`` holds the table this module renders
(``python -m bench.published``), and ``tests/bench/test_does_it_pay.py`` checks that every measurement stands at
or below its bound and that the document shows this module's table.

The bound of a measurement is taken at its own baseline's rate: the bf16 (here also fp16: the same tensor-core
peak and the same bytes) step time that was published, all of it counted as GEMM time at the rate that time
implies, float8 GEMMs at most the peak ratio (2x) faster, and float8 casts at the HBM bandwidth of the GPU. So
everything a baseline spends besides its GEMMs (attention, norms, communication, launch latency) is assumed to
get 2x faster too: that only raises the bound. The bound at the datasheet peak rate, what ``fp8ref plan`` prints
by default, is shown beside it: it bounds only a baseline that runs at the peak, and a slower baseline leaves
the casts a smaller share.

The figures and their setups:

* pytorch/ao#685 (2024-08-15): an FFN, ``Linear(dim, 4*dim)``, GELU, ``Linear(4*dim, dim)``, at batch 32 x
  seq 512 (16384 tokens), torchao float8 with its default recipe then (dynamic tensorwise), eager and under
  ``torch.compile``, against "Torch FP16" eager; torch 2.5 nightly. The issue text reachable here stops at its
  testbed's torch version, so the GPU is not given: the 4*dim hidden layer is that of the same author's
  pytorch/ao#643 a week earlier, and the fp16 baseline's 306 TFLOP/s at dim 4096 rules out the Ada L40 of
  #643 (181 dense); the bound is computed for an H100 SXM (3.35 TB/s).
* pytorch/torchtitan#778 (2025-01-07): Llama-3-8B, batch 1 x seq 4096 per GPU, 8 H100, no activation
  checkpointing, torchao float8 tensorwise; tokens/s per GPU. Two float8 figures, each against the bf16 run in
  the same compile mode: the whole model compiled (against bf16 compiled), only the nn.Linear layers compiled
  (against bf16 eager, since the rest of the model runs eagerly in both).
* torchao's float8 README (torchao 0.10, torch 2.7 nightly, torchtitan 0.0.2): Llama-3-8B, 8 H100, batch 1 x
  seq 8192, FSDP2, per-op selective activation checkpointing, all compiled; tensorwise with float8 all-gather
  +25.03%, rowwise +10.05% over bf16.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from fp8ref import roofline

GPU = "h100-sxm"
FFN_TOKENS = 32 * 512
#: Llama-3-8B's output layer (4096 -> vocabulary 128256) stays in bf16 (fp8ref's filter and torchtitan skip it).
LLAMA3_8B_VOCAB = 128256


@dataclass(frozen=True)
class Figure:
    """One published float8 measurement and its setup."""

    source: str
    url: str
    setup: str
    mode: str  # "eager" or "compiled": how the float8 layers ran
    recipe: str
    baseline: str
    #: the published numbers the speedup is computed from: float8 and baseline, as seconds or tokens/s
    fp8_value: float
    baseline_value: float
    higher_is_better: bool  # tokens/s: True; times: False
    #: the linear layers of one step: (M, K, N, converted to float8)
    layers: tuple[tuple[int, int, int, bool], ...]
    #: the seconds of one baseline step: the time published, or tokens per step / tokens per second
    baseline_step_s: float

    @property
    def measured(self) -> float:
        """The measured speedup of float8 over its baseline."""
        if self.higher_is_better:
            return self.fp8_value / self.baseline_value
        return self.baseline_value / self.fp8_value

    @property
    def baseline_tflops(self) -> float:
        """The rate of the baseline: the linear FLOPs of a step over the published step time, TFLOP/s."""
        flops = sum(roofline.linear_train_flops(m, k, n) for m, k, n, _ in self.layers)
        return flops / self.baseline_step_s / roofline.TERA

    def bound(self, mode: str | None = None, gpu: roofline.GPUSpec | None = None) -> float:
        """The roofline bound of the speedup in ``mode`` (the measurement's own by default), on ``gpu`` (the
        datasheet GPU at the baseline's rate by default)."""
        spec = gpu if gpu is not None else roofline.get_gpu(GPU).at_bf16_rate(self.baseline_tflops)
        chosen = mode or self.mode
        bf16 = fp8 = 0.0
        for m, k, n, converted in self.layers:
            p = roofline.predict(m, k, n, self.recipe, spec, chosen)
            bf16 += p.bf16_time_s
            fp8 += p.fp8_time_s if converted else p.bf16_time_s
        return bf16 / fp8

    def peak_bound(self) -> float:
        """The bound at the datasheet peak rate (``fp8ref plan``'s default)."""
        return self.bound(gpu=roofline.get_gpu(GPU))


def _ffn(dim: int) -> tuple[tuple[int, int, int, bool], ...]:
    return ((FFN_TOKENS, dim, 4 * dim, True), (FFN_TOKENS, 4 * dim, dim, True))


def _llama3_8b(tokens: int) -> tuple[tuple[int, int, int, bool], ...]:
    arch = roofline.LLAMA3_8B
    blocks = [(tokens, k, n, True) for _ in range(32) for k, n in roofline.llama_projection_shapes(arch).values()]
    return (*blocks, (tokens, arch.hidden, LLAMA3_8B_VOCAB, False))


AO_685 = "https://github.com/pytorch/ao/issues/685"
TITAN_778 = "https://github.com/pytorch/torchtitan/pull/778"
AO_README = "https://github.com/pytorch/ao/blob/main/torchao/float8/README.md"

#: pytorch/ao#685: milliseconds per forward + backward step, (fp16, float8 eager, float8 compiled).
AO_685_MS = {512: (0.92, 3.14, 0.95), 1024: (3.14, 7.17, 2.61), 2048: (11.38, 17.84, 7.84), 4096: (43.16, 49.25, 26.20)}


def figures() -> tuple[Figure, ...]:
    rows: list[Figure] = []
    for mode, column in (("eager", 1), ("compiled", 2)):
        for dim, ms in AO_685_MS.items():
            rows.append(
                Figure(
                    source="pytorch/ao#685",
                    url=AO_685,
                    setup=f"FFN dim {dim} (hidden {4 * dim}), 16384 tokens",
                    mode=mode,
                    recipe="tensorwise",
                    baseline="fp16 eager",
                    fp8_value=ms[column] / 1e3,
                    baseline_value=ms[0] / 1e3,
                    higher_is_better=False,
                    layers=_ffn(dim),
                    baseline_step_s=ms[0] / 1e3,
                )
            )
    titan = (
        ("whole model compiled", 5768.6, "bf16 compiled", 5033.8),
        ("only nn.Linear compiled", 4726.4, "bf16 eager", 4495.0),
    )
    for setup, fp8_tps, baseline, baseline_tps in titan:
        rows.append(
            Figure(
                source="pytorch/torchtitan#778",
                url=TITAN_778,
                setup=f"Llama-3-8B, 4096 tokens/GPU, {setup}",
                mode="compiled",
                recipe="tensorwise",
                baseline=baseline,
                fp8_value=fp8_tps,
                baseline_value=baseline_tps,
                higher_is_better=True,
                layers=_llama3_8b(4096),
                baseline_step_s=4096 / baseline_tps,
            )
        )
    for recipe, fp8_tps in (("tensorwise", 7689.5), ("rowwise", 6768.0)):
        rows.append(
            Figure(
                source="torchao float8 README",
                url=AO_README,
                setup="Llama-3-8B, 8192 tokens/GPU, FSDP2, per-op SAC"
                + (", float8 all-gather" if recipe == "tensorwise" else ""),
                mode="compiled",
                recipe=recipe,
                baseline="bf16 compiled",
                fp8_value=fp8_tps,
                baseline_value=6150.0,
                higher_is_better=True,
                layers=_llama3_8b(8192),
                baseline_step_s=8192 / 6150.0,
            )
        )
    return tuple(rows)


def render_table(rows: Sequence[Figure] = ()) -> str:
    """The Markdown table of ``docs/does-it-pay.md``."""
    rows = rows or figures()
    lines = [
        "| source | setup | recipe | float8 ran | vs | measured | baseline's rate | bound at that rate "
        "| holds | measured / bound | at the datasheet peak (plan's default) | other mode's bound |",
        "|---|---|---|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for f in rows:
        other = "compiled" if f.mode == "eager" else "eager"
        bound = f.bound()
        lines.append(
            f"| [{f.source}]({f.url}) | {f.setup} | {f.recipe} | {f.mode} | {f.baseline} | {f.measured:.2f}x "
            f"| {f.baseline_tflops:.0f} TFLOP/s | {bound:.2f}x | {'yes' if bound >= f.measured else '**no**'} "
            f"| {f.measured / bound:.0%} | {f.peak_bound():.2f}x | {other}: {f.bound(other):.2f}x |"
        )
    return "\n".join(lines)


def pcie_note(rows: Sequence[Figure] = ()) -> str:
    """What the eager bounds of pytorch/ao#685 become with the bandwidth of an H100 PCIe (2.0 TB/s)."""
    rows = rows or figures()
    pcie = roofline.get_gpu("h100-pcie")
    cells = []
    for f in rows:
        if f.source == "pytorch/ao#685" and f.mode == "eager":
            spec = pcie.at_bf16_rate(f.baseline_tflops)
            cells.append(f"{f.setup.split(' (')[0]}: {f.bound(gpu=spec):.2f}x against {f.measured:.2f}x")
    return "; ".join(cells)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.published", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    print(render_table())
    print()
    print(f"H100 PCIe eager bounds of pytorch/ao#685: {pcie_note()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
