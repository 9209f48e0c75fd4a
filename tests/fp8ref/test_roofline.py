"""Tests of the roofline model in fp8ref.roofline."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fp8ref import roofline as rl

H100 = rl.GPUS["h100-sxm"]
H200 = rl.GPUS["h200"]
ALL_RECIPES = list(rl.RECIPES)
dims = st.integers(min_value=1, max_value=1 << 16)


def test_published_peaks() -> None:
    assert H100.bf16_flops == pytest.approx(989.4e12)
    assert H100.fp8_flops == pytest.approx(1978.9e12)
    assert H100.hbm_bytes_per_s == pytest.approx(3.35e12)
    assert H200.bf16_flops == H100.bf16_flops
    assert H200.fp8_flops == H100.fp8_flops
    assert H200.hbm_bytes_per_s == pytest.approx(4.8e12)


def test_flops_of_forward_and_backward() -> None:
    assert rl.linear_train_flops(2, 3, 5) == 3 * 2 * 2 * 3 * 5
    assert rl.predict(8192, 4096, 1024).flops == 6 * 8192 * 4096 * 1024


def test_cast_bytes_hand_computed() -> None:
    m, k, n = 4, 8, 16
    x, w, dy = m * k, n * k, m * n
    # tensorwise: three dynamic casts (amax read 2 + read 2 + write 1) + three float8 transposes (1 + 1)
    assert rl.cast_bytes(m, k, n, "tensorwise") == 5 * (x + w + dy) + 2 * (x + w + dy) + 3 * 4
    # rowwise: each tensor cast twice, once per axis; scales: M + K for X, N + K for W, M + N for dY
    assert rl.cast_bytes(m, k, n, "rowwise") == 10 * (x + w + dy) + 4 * (m + k + n + k + m + n)
    # rowwise_with_gw_hp: X, W rowwise; dY rowwise; W tensorwise; grad-weight GEMM not cast
    assert rl.cast_bytes(m, k, n, "rowwise_with_gw_hp") == 5 * (x + w + dy + w) + 4 * (m + n + m + 1)
    # TE delayed scaling: one read, two float8 layouts written, no amax pass
    assert rl.cast_bytes(m, k, n, "te_delayed") == 4 * (x + w + dy) + 3 * 4
    tensors = {op.tensor for op in rl.cast_ops(m, k, n, "rowwise_with_gw_hp")}
    assert tensors == {"input", "weight", "grad_output"}


def test_tiny_shape_hand_computed() -> None:
    """At 16x16x16 every GEMM is memory bound: the ratio is one of bytes."""
    p = rl.predict(16, 16, 16, "tensorwise", "h100-sxm")
    e = 16 * 16
    bf16_bytes = 3 * (3 * e * 2)  # three GEMMs: two bf16 operands + bf16 output
    fp8_bytes = 3 * (2 * e * 1 + e * 2) + rl.cast_bytes(16, 16, 16, "tensorwise")
    assert p.bf16_time_s == pytest.approx(bf16_bytes / 3.35e12)
    assert p.fp8_time_s == pytest.approx(fp8_bytes / 3.35e12)
    assert p.speedup == pytest.approx(4608 / 8460)
    assert not p.worth_it


def test_compute_bound_shape_hand_computed() -> None:
    s = 8192
    p = rl.predict(s, s, s, "tensorwise", "h100-sxm")
    flops = 6 * s**3
    cast = 7 * 3 * s * s + 12
    assert p.bf16_time_s == pytest.approx(flops / 989.4e12)
    assert p.fp8_gemm_time_s == pytest.approx(flops / 1978.9e12)
    assert p.cast_time_s == pytest.approx(cast / 3.35e12)
    assert p.speedup == pytest.approx((flops / 989.4e12) / (flops / 1978.9e12 + cast / 3.35e12))
    assert p.worth_it


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200", "h100-pcie"])
def test_asymptote_is_the_peak_ratio(gpu: str) -> None:
    spec = rl.get_gpu(gpu)
    ratio = spec.fp8_flops / spec.bf16_flops
    big = 1 << 17
    for recipe in ("tensorwise", "rowwise", "te_delayed"):
        s = rl.predict(big, big, big, recipe, gpu).speedup
        assert s < ratio
        assert s == pytest.approx(ratio, rel=0.03)
    # one of the three GEMMs stays in bf16: 3 / (2 / ratio + 1), about 1.5
    gw = rl.predict(big, big, big, "rowwise_with_gw_hp", gpu)
    assert gw.gemm_bound == pytest.approx(3 / (2 / ratio + 1))
    assert gw.speedup == pytest.approx(1.5, rel=0.03)


@pytest.mark.parametrize("recipe", ALL_RECIPES)
@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_small_shapes_lose(recipe: str, gpu: str) -> None:
    for m, k, n in [(1, 1, 1), (16, 16, 16), (64, 64, 64), (128, 256, 256), (8192, 64, 64)]:
        assert rl.predict(m, k, n, recipe, gpu).speedup < 1.0, (m, k, n)


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_speedup_grows_with_tokens_and_with_square_size(recipe: str) -> None:
    for k, n in [(4096, 1024), (14336, 4096), (64, 64), (8192, 28672)]:
        speedups = [rl.predict(2**e, k, n, recipe).speedup for e in range(0, 20)]
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(speedups)), (k, n)
    cubes = [rl.predict(2**e, 2**e, 2**e, recipe).speedup for e in range(2, 18)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(cubes))
    assert cubes[0] < 1.0 < cubes[-1]


@given(m=dims, k=dims, n=dims, recipe=st.sampled_from(ALL_RECIPES))
def test_invariants(m: int, k: int, n: int, recipe: str) -> None:
    h100 = rl.predict(m, k, n, recipe, "h100-sxm")
    h200 = rl.predict(m, k, n, recipe, "h200")
    for p in (h100, h200):
        assert 0.0 < p.speedup <= p.gemm_bound <= H100.fp8_flops / H100.bf16_flops + 1e-9
        assert p.cast_bytes > 0 and math.isfinite(p.fp8_time_s)
    # same compute, more bandwidth: the casts cost less, so the bound never falls
    assert h200.speedup >= h100.speedup - 1e-12
    # delayed scaling (no amax pass, one read) moves fewer bytes than torchao's dynamic recipes
    te = rl.cast_bytes(m, k, n, "te_delayed")
    assert te < rl.cast_bytes(m, k, n, "tensorwise") < rl.cast_bytes(m, k, n, "rowwise")
    # doubling the tokens never lowers the bound
    assert rl.predict(2 * m, k, n, recipe).speedup >= rl.predict(m, k, n, recipe).speedup - 1e-12


def test_measured_ceilings_override() -> None:
    measured = H100.with_ceilings(bf16_tflops=700, fp8_tflops=1200, hbm_tbps=2.9)
    assert measured.bf16_flops == pytest.approx(700e12)
    assert measured.fp8_flops == pytest.approx(1200e12)
    assert measured.hbm_bytes_per_s == pytest.approx(2.9e12)
    assert "measured" in measured.source
    assert H100.with_ceilings() is H100
    big = 1 << 16
    assert rl.predict(big, big, big, "tensorwise", measured).speedup == pytest.approx(1200 / 700, rel=0.03)
    g = rl.get_gpu("H100", fp8_tflops=1500)
    assert g.name == "h100-sxm" and g.fp8_flops == pytest.approx(1500e12) and g.bf16_flops == H100.bf16_flops


def test_device_names() -> None:
    assert rl.gpu_for_device_name("NVIDIA H100 80GB HBM3") == H100
    assert rl.gpu_for_device_name("NVIDIA H100 PCIe") == rl.GPUS["h100-pcie"]
    assert rl.gpu_for_device_name("NVIDIA H200") == H200
    assert rl.gpu_for_device_name("NVIDIA GeForce RTX 4090") is None
    assert rl.gpu_for_device_name("cpu") is None


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0, 16, 16), ValueError, "M must be positive"),
        ((16, -1, 16), ValueError, "K must be positive"),
        ((16, 16, 0), ValueError, "N must be positive"),
        ((16.0, 16, 16), TypeError, "M must be an int"),
        ((True, 16, 16), TypeError, "M must be an int"),
        ((16, 16, 16, "blockwise"), ValueError, "valid: tensorwise, rowwise"),
        ((16, 16, 16, "rowwise", "a100"), ValueError, "known: h100-pcie, h100-sxm, h200"),
    ],
)
def test_invalid_input(args: tuple[object, ...], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        rl.predict(*args)  # type: ignore[arg-type]


def test_invalid_spec() -> None:
    with pytest.raises(ValueError, match="fp8_flops must be a positive finite number"):
        rl.GPUSpec("x", 1e12, 0.0, 1e12, "test")
    with pytest.raises(ValueError, match="hbm_bytes_per_s"):
        H100.with_ceilings(hbm_tbps=float("nan"))


def test_recipe_names_are_case_insensitive() -> None:
    assert rl.predict(64, 64, 64, " RowWise ").recipe == "rowwise"


def test_llama3_shapes_and_predictions() -> None:
    shapes = rl.llama_projection_shapes(rl.LLAMA3_8B)
    assert shapes == {
        "q_proj": (4096, 4096),
        "k_proj": (4096, 1024),
        "v_proj": (4096, 1024),
        "o_proj": (4096, 4096),
        "gate_proj": (4096, 14336),
        "up_proj": (4096, 14336),
        "down_proj": (14336, 4096),
    }
    assert rl.llama_projection_shapes(rl.LLAMA3_70B)["down_proj"] == (28672, 8192)
    for gpu in ("h100-sxm", "h200"):
        for recipe in ALL_RECIPES:
            speedups = {name: rl.predict(8192, k, n, recipe, gpu).speedup for name, (k, n) in shapes.items()}
            # the big MLP projections gain the most, the thin k/v projections the least
            assert speedups["gate_proj"] >= speedups["q_proj"] > speedups["k_proj"]
            assert all(s < 2.0 for s in speedups.values())
    # the numbers quoted in bench/README.md
    assert rl.predict(8192, 4096, 14336, "tensorwise", "h100-sxm").speedup == pytest.approx(1.538, abs=1e-3)
    assert rl.predict(8192, 4096, 1024, "rowwise", "h100-sxm").speedup == pytest.approx(0.861, abs=1e-3)


def test_fast_enough_for_a_70b_plan() -> None:
    shapes = list(rl.llama_projection_shapes(rl.LLAMA3_70B).values())
    start = time.perf_counter()
    for _ in range(80):  # 80 decoder layers
        for k, n in shapes:
            rl.predict(8192, k, n, "rowwise", "h200")
    assert time.perf_counter() - start < 1.0


def test_module_imports_no_torch() -> None:
    path = Path(rl.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('roofline_alone', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "sys.modules['roofline_alone'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'torchao', 'accelerate') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert mod.predict(64, 64, 64).speedup < 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- eager against compiled


def test_eager_cast_bytes_hand_computed() -> None:
    """What torchao 0.18's eager code launches per dynamic cast of a bf16 tensor: abs (2+2), amax (2),
    to float32 (2+4), * scale (4+4), clamp (4+4), to float8 (4+1) = 33 bytes per element; each of X, W and dY
    cast once per GEMM that uses it (twice), plus the three float8 layout copies of preprocess_addmm."""
    m, k, n = 4, 8, 16
    x, w, dy = m * k, n * k, m * n
    scale = 2 + 10 + 16 + 16 + 12 + 8  # amax write, to float64, clamp, divide, to float32, reciprocal
    assert rl.cast_bytes(m, k, n, "tensorwise", "eager") == 2 * 33 * (x + w + dy) + 2 * (x + w + dy) + 6 * scale
    pow2 = scale + 24  # log2, floor, exp2 of each rowwise scale
    rescale = 4 + 4 + 2 + 2  # the float32 outer product of the inverse scales, then the bf16 output rescaled
    scales = m + n + m + k + n + k
    expected = 2 * 33 * (x + w + dy) + 2 * (x + w + dy) + rescale * (x + w) + pow2 * scales
    assert rl.cast_bytes(m, k, n, "rowwise", "eager") == expected
    # rowwise_with_gw_hp: four casts, the weight's layout copy, the grad_input rescale; grad_weight in bf16
    expected = 33 * (x + w + dy + w) + 2 * w + rescale * x + pow2 * (m + n + m + 1)
    assert rl.cast_bytes(m, k, n, "rowwise_with_gw_hp", "eager") == expected
    # Transformer Engine's kernels are its own: the same with or without torch.compile
    assert rl.cast_ops(m, k, n, "te_delayed", "eager") == rl.cast_ops(m, k, n, "te_delayed")


@given(m=dims, k=dims, n=dims, recipe=st.sampled_from(["tensorwise", "rowwise", "rowwise_with_gw_hp"]))
def test_eager_never_beats_compiled(m: int, k: int, n: int, recipe: str) -> None:
    eager = rl.predict(m, k, n, recipe, "h100-sxm", "eager")
    fused = rl.predict(m, k, n, recipe, "h100-sxm", "compiled")
    assert eager.mode == "eager" and fused.mode == "compiled"
    assert eager.cast_bytes > fused.cast_bytes
    assert eager.speedup < fused.speedup
    assert eager.bf16_time_s == fused.bf16_time_s and eager.fp8_gemm_time_s == fused.fp8_gemm_time_s


def test_eager_llama3_8b_loses_on_h100_at_the_peak_rate() -> None:
    shapes = rl.llama_projection_shapes(rl.LLAMA3_8B).values()
    for recipe in ("tensorwise", "rowwise"):
        preds = [rl.predict(8192, k, n, recipe, "h100-sxm", "eager") for k, n in shapes]
        whole = sum(p.bf16_time_s for p in preds) / sum(p.fp8_time_s for p in preds)
        assert whole < 1.0, recipe
        compiled = [rl.predict(8192, k, n, recipe, "h100-sxm") for k, n in shapes]
        assert sum(p.bf16_time_s for p in compiled) / sum(p.fp8_time_s for p in compiled) > 1.3


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="valid: compiled, eager"):
        rl.predict(64, 64, 64, "rowwise", "h100-sxm", "jit")
    assert rl.predict(64, 64, 64, "rowwise", "h100-sxm", " Eager ").mode == "eager"


def test_bf16_rate_keeps_the_peak_ratio_and_the_bandwidth() -> None:
    slow = H100.at_bf16_rate(300.0)
    assert slow.bf16_flops == pytest.approx(300e12)
    assert slow.fp8_flops == pytest.approx(300e12 * H100.fp8_flops / H100.bf16_flops)
    assert slow.hbm_bytes_per_s == H100.hbm_bytes_per_s
    # a slower baseline spends longer in its GEMMs while the casts cost the same: FP8 gains more
    for mode in rl.MODES:
        assert (
            rl.predict(8192, 4096, 4096, "rowwise", slow, mode).speedup
            > rl.predict(8192, 4096, 4096, "rowwise", H100, mode).speedup
        )
    with pytest.raises(ValueError, match="positive finite"):
        H100.at_bf16_rate(0.0)
