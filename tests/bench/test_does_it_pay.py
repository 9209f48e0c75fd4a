"""docs/does-it-pay.md: every published float8 measurement stands at or below the bound fp8ref's roofline gives
for its setup, in the mode it was measured in, and the page shows the table bench.published computes.

A bound below a measurement means the model is wrong: fix the model, never the table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import published
from fp8ref import roofline

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "does-it-pay.md"
FIGURES = published.figures()


@pytest.mark.parametrize("figure", FIGURES, ids=[f"{f.source}: {f.setup}, {f.mode}" for f in FIGURES])
def test_measurement_at_or_below_its_bound(figure: published.Figure) -> None:
    assert figure.bound() >= figure.measured, (figure.setup, figure.mode, figure.bound(), figure.measured)


def test_both_modes_are_covered_and_compiled_bounds_eager() -> None:
    modes = {f.mode for f in FIGURES}
    assert modes == {"eager", "compiled"}
    for f in FIGURES:
        assert f.bound("compiled") > f.bound("eager")  # eager torchao never beats compiled in the model


def test_the_published_ratios_are_transcribed() -> None:
    """The speedups the issue texts and the README state, from the raw numbers this module holds."""
    ffn = {(f.mode, f.setup.split(" (")[0]): round(f.measured, 2) for f in FIGURES if f.source == "pytorch/ao#685"}
    assert [ffn["eager", f"FFN dim {d}"] for d in (512, 1024, 2048, 4096)] == [0.29, 0.44, 0.64, 0.88]
    assert [ffn["compiled", f"FFN dim {d}"] for d in (512, 1024, 2048, 4096)] == [0.97, 1.20, 1.45, 1.65]
    readme = {f.recipe: f.measured for f in FIGURES if f.source == "torchao float8 README"}
    assert readme["tensorwise"] == pytest.approx(1.2503, abs=1e-4) and readme["rowwise"] == pytest.approx(
        1.1005, abs=1e-4
    )


def test_the_page_shows_this_table_and_its_numbers() -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- bench.published: begin -->\n(.*?)\n<!-- bench.published: end -->", text, re.S)
    assert match, "docs/does-it-pay.md lost its table markers"
    assert match.group(1) == published.render_table(), "regenerate the table: python -m bench.published"
    assert published.pcie_note() in text
    shares = [f.measured / f.bound() for f in FIGURES]
    assert f"stand at {min(shares):.0%} to\n{max(shares):.0%} of their bounds" in text
    rates = [f.baseline_tflops for f in FIGURES]
    assert f"ran at {min(rates):.0f} to\n{max(rates):.0f} TFLOP/s" in text
    (ffn4096,) = [f for f in FIGURES if f.mode == "eager" and f.setup.startswith("FFN dim 4096")]
    claim = f"the model gives {ffn4096.peak_bound():.2f}x for an FFN whose eager\nfloat8 run measured"
    assert f"{claim} {ffn4096.measured:.2f}x" in text


def _llama3_70b_bounds() -> dict[str, float]:
    """Llama-3-70B at 8192 tokens on an H100 SXM, rowwise, at the datasheet peak: plan's linear bound."""
    arch = roofline.LLAMA3_70B
    bounds = {}
    for mode in roofline.MODES:
        bf16 = fp8 = 0.0
        for k, n in roofline.llama_projection_shapes(arch).values():
            p = roofline.predict(8192, k, n, "rowwise", "h100-sxm", mode)
            bf16, fp8 = bf16 + 80 * p.bf16_time_s, fp8 + 80 * p.fp8_time_s
        head = roofline.predict(8192, arch.hidden, published.LLAMA3_8B_VOCAB, "rowwise", "h100-sxm", mode)
        bounds[mode] = (bf16 + head.bf16_time_s) / (fp8 + head.bf16_time_s)
    return bounds


def test_the_llama_3_70b_figures_of_the_page() -> None:
    bounds = _llama3_70b_bounds()
    assert f"eager {bounds['eager']:.2f}x, compiled {bounds['compiled']:.2f}x" in DOC.read_text(encoding="utf-8")


def test_the_readme_shows_both_modes() -> None:
    """The README's "Does FP8 pay?" section: torchao needs torch.compile, the table of both modes is the model's,
    its figures are this module's, and it still says that no GPU measurement is recorded here."""
    from bench.roofline_table import readme_table

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Does FP8 pay?") : text.index("## `fp8ref doctor`")]
    assert "**torchao needs `torch.compile`.**" in section
    assert "No GPU measurements are recorded in this repository" in section
    assert readme_table() in section and "compiled / eager" in section
    shares = [f.measured / f.bound() for f in FIGURES]
    assert f"at {min(shares):.0%} to {max(shares):.0%} of it" in section
    bounds = _llama3_70b_bounds()
    assert f"`--compiled` {bounds['compiled']:.2f}x, `--eager` {bounds['eager']:.2f}x" in text


def test_fp8ref_plan_gives_the_same_bound() -> None:
    """The Llama bounds are plan's: the meta model of the Llama-3-8B config, fp8ref's filter, the same rate."""
    from fp8ref.plan import plan_config

    figure = next(f for f in FIGURES if f.source == "pytorch/torchtitan#778")
    spec = roofline.get_gpu(published.GPU).at_bf16_rate(figure.baseline_tflops)
    plan = plan_config(
        REPO / "bench" / "configs" / "llama3-8b.json", recipe=figure.recipe, tokens=4096, gpu=spec, mode=figure.mode
    )
    assert len(plan.layers) == len(figure.layers) and len(plan.converted) == len(figure.layers) - 1
    assert plan.predicted_linear_speedup == pytest.approx(figure.bound(), rel=1e-12)


def test_the_bench_readme_shows_the_compiled_table() -> None:
    from bench.roofline_table import table

    text = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    assert table(roofline.LLAMA3_8B, 8192, "compiled") in text, "regenerate: python -m bench.roofline_table"
