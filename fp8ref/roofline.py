"""A small roofline model of FP8 training speed for one linear layer.

The question it answers: for a linear layer with ``M`` tokens, ``K`` input features and ``N``
output features, trained forward + backward, how much faster can FP8 be than bf16 on a given GPU,
and is it worth converting at all?

Model
=====
A linear layer's training step runs three GEMMs of ``2*M*K*N`` FLOPs each::

    forward      Y  = X @ W^T        (M x K) @ (K x N)
    grad input   dX = dY @ W         (M x N) @ (N x K)
    grad weight  dW = dY^T @ X       (N x M) @ (M x K)

so ``6*M*K*N`` FLOPs per step. Each GEMM is timed by the classic roofline
``max(flops / peak_flops, bytes / bandwidth)`` where ``bytes`` is what the GEMM must read and write
(operands at 2 bytes per element in bf16 or 1 byte in float8; the output in bf16, 2 bytes).

FP8 adds the casts, which are pure memory traffic timed at the HBM bandwidth. How much traffic depends on
whether torchao's casts are fused by ``torch.compile`` (:data:`MODES`):

``compiled`` (the default; the bound torchao's published speedups are measured against)
    Per cast of a bf16 tensor of ``E`` elements into float8 with *dynamic* scaling: the amax reduction
    reads the tensor once (2 bytes per element); the fused scale-and-cast kernel reads it again (2 bytes)
    and writes float8 (1 byte); each scale is a float32 (4 bytes) written.
``eager`` (no ``torch.compile``: what the HF Trainer runs unless ``torch_compile=True``)
    What torchao 0.18's eager code launches, each kernel a separate pass over the tensor at HBM bandwidth
    (``torchao/float8/float8_scaling_utils.py`` -> ``float8_utils.tensor_to_scale`` and
    ``float8_training_tensor._ToFloat8ConstrFunc``): ``torch.abs`` (read 2, write 2), ``max`` / ``amax``
    (read 2), ``.to(float32)`` (read 2, write 4), ``* scale`` (read 4, write 4), ``clamp`` in
    ``to_fp8_saturated`` (read 4, write 4), ``.to(float8)`` (read 4, write 1): 33 bytes per element, against
    5 fused. The scale itself goes through ``amax_to_scale`` (to float64, clamp, divide, to float32; rowwise
    also rounds to a power of 2 with log2, floor, exp2) and a ``reciprocal`` before the GEMM. Nothing is
    shared between the forward and the backward: ``matmul_with_hp_or_float8_args`` casts the input, weight
    and grad_output once for each GEMM that uses them, so every recipe casts each of them twice (the
    weight-gradient GEMM of ``rowwise_with_gw_hp`` excepted, which stays in bf16). ``preprocess_addmm``
    copies each float8 operand that is not in the layout ``torch._scaled_mm`` needs
    (``.t().contiguous().t()``: the weight for grad_input, grad_output and input for grad_weight; read 1 +
    write 1). With rowwise scales and no fast accumulation (the two backward GEMMs) ``addmm_float8_unwrapped``
    runs the GEMM with unit scales, then builds the outer product of the inverse scales (an M x N float32
    tensor, written) and multiplies the bf16 output by it (read 4 + read 2 + write 2).

Which tensors are cast depends on the recipe (:data:`RECIPES`); the compiled figures are:

``tensorwise`` (torchao default; Float8LinearConfig())
    X, W and dY are each cast once with one scale per tensor; their second use needs the
    transposed layout (Hopper's float8 GEMM takes only one operand layout), counted as a
    float8 transpose copy (read 1 byte + write 1 byte per element).
``rowwise`` (torchao ``rowwise``; fp8ref's default)
    the scale follows the GEMM's contraction axis, so each of X, W and dY is cast twice, once
    per axis: six casts, with one scale per row or column.
``rowwise_with_gw_hp`` (torchao ``rowwise_with_gw_hp``)
    X and W are cast rowwise for the forward GEMM, dY rowwise and W tensorwise for the
    grad-input GEMM; the grad-weight GEMM stays in bf16 (its two operands are not cast). Its
    GEMM-only bound is therefore 3 / (2/2 + 1) = 1.5x, not 2x.
``te_delayed`` (Transformer Engine DelayedScaling, as fp8ref configures it: HYBRID format)
    the scale comes from the amax history, so there is no separate amax pass: X, W and dY are
    each read once and written in float8 in both layouts (a fused cast-transpose). TE's kernels are
    its own, fused with or without ``torch.compile``: both modes are the same for it.

The model ignores kernel launch latency (eager torchao launches about a dozen small kernels per cast,
which dominates at small shapes), the cost of the amax history update, fusion of a cast
into the kernel that produced its input, and any overlap between casts and GEMMs. Under these
assumptions the predicted speedup is an upper bound of what a real run reaches over a baseline whose
GEMMs run at the rate the model is given: GEMMs at that rate (float8 at most the peak ratio faster),
casts at the full bandwidth. At the datasheet peak (the default) it bounds a baseline that reaches the
peak; a real baseline runs below it, its GEMMs take longer while the casts do not, and FP8 can then gain
more than the peak-rate figure: give the baseline's measured rate (:meth:`GPUSpec.at_bf16_rate`,
``fp8ref plan --bf16-tflops``) to bound that run. ``docs/does-it-pay.md`` holds every published figure
under its bound. For huge shapes it tends to the ratio of the peak rates (2x on
H100/H200, 1.5x for ``rowwise_with_gw_hp``); for small shapes the GEMMs are memory bound and the
cast traffic makes FP8 slower than bf16 (speedup below 1).

Peak figures
============
:data:`GPUS` holds the published dense (non-sparse) peaks; measured ceilings override them with
:meth:`GPUSpec.with_ceilings`. The module is pure Python and imports nothing heavy, so
``fp8ref plan`` can call :func:`predict` for every layer of a 70B model in milliseconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "GPUS",
    "LLAMA3_8B",
    "LLAMA3_70B",
    "MODES",
    "RECIPES",
    "CastOp",
    "GPUSpec",
    "LlamaShape",
    "Prediction",
    "cast_bytes",
    "cast_ops",
    "check_mode",
    "get_gpu",
    "gpu_for_device_name",
    "linear_train_flops",
    "llama_projection_shapes",
    "predict",
]

logger = logging.getLogger(__name__)

TERA = 1e12

BF16_BYTES = 2
FP8_BYTES = 1
SCALE_BYTES = 4  # float32 scales
OUT_BYTES = 2  # GEMM outputs are written in bf16


@dataclass(frozen=True)
class GPUSpec:
    """Peak rates of one GPU.

    Attributes:
        name: short key, e.g. ``"h100-sxm"``.
        bf16_flops: dense bf16 tensor-core peak, FLOP/s.
        fp8_flops: dense float8 tensor-core peak, FLOP/s.
        hbm_bytes_per_s: memory bandwidth, bytes/s.
        source: where the figures come from (a datasheet, or "measured").
    """

    name: str
    bf16_flops: float
    fp8_flops: float
    hbm_bytes_per_s: float
    source: str

    def __post_init__(self) -> None:
        for field in ("bf16_flops", "fp8_flops", "hbm_bytes_per_s"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"GPUSpec {self.name!r}: {field} must be a positive finite number, got {value!r}")

    def with_ceilings(
        self,
        *,
        bf16_tflops: float | None = None,
        fp8_tflops: float | None = None,
        hbm_tbps: float | None = None,
    ) -> GPUSpec:
        """Return a copy whose peaks are replaced by measured ceilings.

        Args:
            bf16_tflops: measured bf16 GEMM ceiling in TFLOP/s (10**12 FLOP/s).
            fp8_tflops: measured float8 GEMM ceiling in TFLOP/s.
            hbm_tbps: measured memory bandwidth in TB/s (10**12 bytes/s).
        """
        if bf16_tflops is None and fp8_tflops is None and hbm_tbps is None:
            return self
        return GPUSpec(
            name=self.name,
            bf16_flops=self.bf16_flops if bf16_tflops is None else bf16_tflops * TERA,
            fp8_flops=self.fp8_flops if fp8_tflops is None else fp8_tflops * TERA,
            hbm_bytes_per_s=self.hbm_bytes_per_s if hbm_tbps is None else hbm_tbps * TERA,
            source=f"measured ceilings over {self.source}",
        )

    def at_bf16_rate(self, bf16_tflops: float) -> GPUSpec:
        """A copy whose bf16 GEMMs run at ``bf16_tflops`` (a baseline's measured rate) and whose float8 GEMMs
        run at most the peak ratio faster (``fp8_flops / bf16_flops`` of this spec); the bandwidth is kept.

        The speedup bound then holds for that baseline. A baseline below the peak rate spends longer in its
        GEMMs, so the casts (at full bandwidth) weigh less and FP8 can gain more than at the datasheet peak:
        the bound at the peak rate is an upper bound only for a baseline that reaches it.
        """
        if not (isinstance(bf16_tflops, (int, float)) and math.isfinite(bf16_tflops) and bf16_tflops > 0):
            raise ValueError(f"the bf16 rate must be a positive finite number of TFLOP/s, got {bf16_tflops!r}")
        ratio = self.fp8_flops / self.bf16_flops
        return GPUSpec(
            name=self.name,
            bf16_flops=bf16_tflops * TERA,
            fp8_flops=bf16_tflops * TERA * ratio,
            hbm_bytes_per_s=self.hbm_bytes_per_s,
            source=f"bf16 GEMMs at {bf16_tflops:.0f} TFLOP/s, float8 at {ratio:.2g}x that; {self.source}",
        )


#: Published dense peaks. Sources:
#:
#: * H100 SXM5: NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100/):
#:   BF16 1,979 and FP8 3,958 TFLOPS *with sparsity*, i.e. 989.4 and 1,978.9 dense (the dense
#:   figures of the "NVIDIA H100 Tensor Core GPU Architecture" whitepaper); HBM3 3.35 TB/s.
#: * H100 PCIe: same datasheet: BF16 1,513 and FP8 3,026 TFLOPS with sparsity (756 / 1,513 dense);
#:   HBM2e 2.0 TB/s.
#: * H200 SXM: NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200/): the same tensor-core
#:   peaks as H100 SXM (BF16 1,979 / FP8 3,958 TFLOPS with sparsity), HBM3e 4.8 TB/s.
_DENSE = "datasheet (dense = half the sparse figure)"
#: name: (BF16 and FP8 dense TFLOPS, HBM TB/s, source)
_GPU_FIGURES = {
    "h100-sxm": (989.4, 1978.9, 3.35, f"NVIDIA H100 {_DENSE}"),
    "h100-pcie": (756.5, 1513.0, 2.0, f"NVIDIA H100 {_DENSE}"),
    "h200": (989.4, 1978.9, 4.8, f"NVIDIA H200 {_DENSE}"),
}
GPUS: Mapping[str, GPUSpec] = {
    name: GPUSpec(name, bf16 * TERA, fp8 * TERA, hbm * TERA, source)
    for name, (bf16, fp8, hbm, source) in _GPU_FIGURES.items()
}


def get_gpu(
    name: str,
    *,
    bf16_tflops: float | None = None,
    fp8_tflops: float | None = None,
    hbm_tbps: float | None = None,
) -> GPUSpec:
    """Look up a GPU by key (case-insensitive; ``"h100"`` means ``"h100-sxm"``), with optional overrides.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    key = name.strip().lower()
    if key == "h100":
        key = "h100-sxm"
    if key not in GPUS:
        raise ValueError(f"unknown GPU {name!r}; known: {', '.join(sorted(GPUS))} (or pass a GPUSpec)")
    return GPUS[key].with_ceilings(bf16_tflops=bf16_tflops, fp8_tflops=fp8_tflops, hbm_tbps=hbm_tbps)


def gpu_for_device_name(device_name: str) -> GPUSpec | None:
    """Map a ``torch.cuda.get_device_name()`` string to a spec, or ``None`` when unknown.

    ``"NVIDIA H100 80GB HBM3"`` is the SXM part, ``"NVIDIA H100 PCIe"`` the PCIe card,
    ``"NVIDIA H200"`` (any suffix) the H200.
    """
    lowered = device_name.lower()
    if "h200" in lowered:
        return GPUS["h200"]
    if "h100" in lowered:
        if "pcie" in lowered:
            return GPUS["h100-pcie"]
        return GPUS["h100-sxm"]
    return None


@dataclass(frozen=True)
class CastOp:
    """One float8 cast, or one memory pass that comes with it, over a tensor of ``elements`` elements.

    Attributes:
        tensor: which tensor (``"input"``, ``"weight"``, ``"grad_output"``, or a GEMM output).
        purpose: which GEMM the result feeds, and the scaling.
        elements: number of elements.
        scales: number of float32 scales.
        bytes_per_element: bytes moved per element (reads + writes).
        bytes_per_scale: bytes moved per scale (its computation and writes).
    """

    tensor: str
    purpose: str
    elements: int
    scales: int
    bytes_per_element: int
    bytes_per_scale: int = SCALE_BYTES

    @property
    def bytes(self) -> int:
        return self.elements * self.bytes_per_element + self.scales * self.bytes_per_scale


#: Modes of :func:`predict`: ``compiled`` (torch.compile fuses torchao's casts) or ``eager``.
MODES = ("compiled", "eager")

#: dynamic cast: amax read (2) + cast read (2) + float8 write (1)
_DYNAMIC = 2 * BF16_BYTES + FP8_BYTES
#: float8 transpose copy: read (1) + write (1)
_TRANSPOSE = 2 * FP8_BYTES
#: fused delayed-scaling cast-transpose: read bf16 once (2) + write both float8 layouts (2)
_CAST_TRANSPOSE = BF16_BYTES + 2 * FP8_BYTES

FP32_BYTES = 4
FP64_BYTES = 8
#: eager dynamic cast, one kernel per line of torchao 0.18 (bf16 input):
_EAGER_DYNAMIC = (
    2 * BF16_BYTES  # torch.abs: read, write
    + BF16_BYTES  # torch.max / torch.amax: read
    + BF16_BYTES
    + FP32_BYTES  # tensor.to(torch.float32): read, write
    + 2 * FP32_BYTES  # * scale: read, write
    + 2 * FP32_BYTES  # clamp (to_fp8_saturated): read, write
    + FP32_BYTES
    + FP8_BYTES  # .to(float8): read, write
)
#: eager scale computation per scale: amax written (bf16), to float64, clamp, divide, to float32, and the
#: reciprocal before the GEMM
_EAGER_SCALE = (
    BF16_BYTES
    + (BF16_BYTES + FP64_BYTES)
    + 2 * FP64_BYTES
    + 2 * FP64_BYTES
    + (FP64_BYTES + FP32_BYTES)
    + 2 * FP32_BYTES
)
#: rowwise recipes also round each scale down to a power of 2: log2, floor, exp2
_EAGER_SCALE_POW2 = _EAGER_SCALE + 3 * 2 * FP32_BYTES
#: rowwise GEMM without fast accumulation, per output element: the float32 outer product of the inverse
#: scales written, then read with the bf16 output, which is written back
_EAGER_RESCALE = FP32_BYTES + FP32_BYTES + 2 * OUT_BYTES

#: recipe name -> (GEMMs run in float8 out of the three: forward, grad_input, grad_weight)
RECIPES: Mapping[str, tuple[bool, bool, bool]] = {
    "tensorwise": (True, True, True),
    "rowwise": (True, True, True),
    "rowwise_with_gw_hp": (True, True, False),
    "te_delayed": (True, True, True),
}


def _check_shape(m: int, k: int, n: int) -> None:
    for label, value in (("M", m), ("K", k), ("N", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{label} must be an int, got {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{label} must be positive, got {value}")


def _check_recipe(recipe: str) -> str:
    key = recipe.strip().lower()
    if key not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
    return key


def check_mode(mode: str) -> str:
    """The mode's key (``compiled`` or ``eager``, case-insensitive); ``ValueError`` for anything else."""
    key = mode.strip().lower() if isinstance(mode, str) else mode
    if key not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    return str(key)


def linear_train_flops(m: int, k: int, n: int) -> int:
    """FLOPs of a linear layer's forward + backward: three GEMMs of ``2*M*K*N``."""
    _check_shape(m, k, n)
    return 3 * 2 * m * k * n


def cast_ops(m: int, k: int, n: int, recipe: str, mode: str = "compiled") -> tuple[CastOp, ...]:
    """The float8 casts (and the memory passes that come with them) of one training step of an ``M x K -> N``
    linear, fused by ``torch.compile`` (``mode="compiled"``) or as torchao's eager code runs them."""
    _check_shape(m, k, n)
    key = _check_recipe(recipe)
    if check_mode(mode) == "eager" and key != "te_delayed":
        return _eager_cast_ops(m, k, n, key)
    x, w, dy = m * k, n * k, m * n
    if key == "tensorwise":
        return (
            CastOp("input", "forward, tensorwise", x, 1, _DYNAMIC),
            CastOp("weight", "forward, tensorwise", w, 1, _DYNAMIC),
            CastOp("grad_output", "grad_input, tensorwise", dy, 1, _DYNAMIC),
            CastOp("weight", "grad_input, float8 transpose", w, 0, _TRANSPOSE),
            CastOp("grad_output", "grad_weight, float8 transpose", dy, 0, _TRANSPOSE),
            CastOp("input", "grad_weight, float8 transpose", x, 0, _TRANSPOSE),
        )
    if key == "rowwise":
        return (
            CastOp("input", "forward, scale per row (over K)", x, m, _DYNAMIC),
            CastOp("weight", "forward, scale per row (over K)", w, n, _DYNAMIC),
            CastOp("grad_output", "grad_input, scale per row (over N)", dy, m, _DYNAMIC),
            CastOp("weight", "grad_input, scale per column (over N)", w, k, _DYNAMIC),
            CastOp("grad_output", "grad_weight, scale per column (over M)", dy, n, _DYNAMIC),
            CastOp("input", "grad_weight, scale per column (over M)", x, k, _DYNAMIC),
        )
    if key == "rowwise_with_gw_hp":
        return (
            CastOp("input", "forward, scale per row (over K)", x, m, _DYNAMIC),
            CastOp("weight", "forward, scale per row (over K)", w, n, _DYNAMIC),
            CastOp("grad_output", "grad_input, scale per row (over N)", dy, m, _DYNAMIC),
            CastOp("weight", "grad_input, tensorwise", w, 1, _DYNAMIC),
        )
    # te_delayed
    return (
        CastOp("input", "forward + grad_weight, delayed scaling, cast-transpose", x, 1, _CAST_TRANSPOSE),
        CastOp("weight", "forward + grad_input, delayed scaling, cast-transpose", w, 1, _CAST_TRANSPOSE),
        CastOp("grad_output", "grad_input + grad_weight, delayed scaling, cast-transpose", dy, 1, _CAST_TRANSPOSE),
    )


def _eager_cast_ops(m: int, k: int, n: int, key: str) -> tuple[CastOp, ...]:
    """torchao 0.18's eager ``matmul_with_hp_or_float8_args``: one dynamic cast per GEMM operand, the layout
    copies of ``preprocess_addmm``, and the rescale of rowwise GEMMs without fast accumulation."""
    x, w, dy = m * k, n * k, m * n
    eager = f"eager, {key}"
    if key == "tensorwise":
        return (
            CastOp("input", f"forward, {eager}", x, 1, _EAGER_DYNAMIC, _EAGER_SCALE),
            CastOp("weight", f"forward, {eager}", w, 1, _EAGER_DYNAMIC, _EAGER_SCALE),
            CastOp("grad_output", f"grad_input, {eager}", dy, 1, _EAGER_DYNAMIC, _EAGER_SCALE),
            CastOp("weight", f"grad_input, {eager}", w, 1, _EAGER_DYNAMIC, _EAGER_SCALE),
            CastOp("grad_output", f"grad_weight, {eager}", dy, 1, _EAGER_DYNAMIC, _EAGER_SCALE),
            CastOp("input", f"grad_weight, {eager}", x, 1, _EAGER_DYNAMIC, _EAGER_SCALE),
            CastOp("weight", "grad_input, float8 layout copy", w, 0, _TRANSPOSE),
            CastOp("grad_output", "grad_weight, float8 layout copy", dy, 0, _TRANSPOSE),
            CastOp("input", "grad_weight, float8 layout copy", x, 0, _TRANSPOSE),
        )
    if key == "rowwise":
        return (
            CastOp("input", f"forward, {eager}, scale per row", x, m, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
            CastOp("weight", f"forward, {eager}, scale per row", w, n, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
            CastOp("grad_output", f"grad_input, {eager}, scale per row", dy, m, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
            CastOp("weight", f"grad_input, {eager}, scale per column", w, k, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
            CastOp("grad_output", f"grad_weight, {eager}, scale per column", dy, n, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
            CastOp("input", f"grad_weight, {eager}, scale per column", x, k, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
            CastOp("weight", "grad_input, float8 layout copy", w, 0, _TRANSPOSE),
            CastOp("grad_output", "grad_weight, float8 layout copy", dy, 0, _TRANSPOSE),
            CastOp("input", "grad_weight, float8 layout copy", x, 0, _TRANSPOSE),
            CastOp("grad_input", "rowwise rescale of the bf16 output (no fast accumulation)", x, 0, _EAGER_RESCALE),
            CastOp("grad_weight", "rowwise rescale of the bf16 output (no fast accumulation)", w, 0, _EAGER_RESCALE),
        )
    # rowwise_with_gw_hp: the grad-weight GEMM is a plain bf16 mm (no cast, no copy)
    return (
        CastOp("input", f"forward, {eager}, scale per row", x, m, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
        CastOp("weight", f"forward, {eager}, scale per row", w, n, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
        CastOp("grad_output", f"grad_input, {eager}, scale per row", dy, m, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
        CastOp("weight", f"grad_input, {eager}, tensorwise", w, 1, _EAGER_DYNAMIC, _EAGER_SCALE_POW2),
        CastOp("weight", "grad_input, float8 layout copy", w, 0, _TRANSPOSE),
        CastOp("grad_input", "rowwise rescale of the bf16 output (no fast accumulation)", x, 0, _EAGER_RESCALE),
    )


def cast_bytes(m: int, k: int, n: int, recipe: str, mode: str = "compiled") -> int:
    """Bytes moved by all the casts of :func:`cast_ops`."""
    return sum(op.bytes for op in cast_ops(m, k, n, recipe, mode))


def _gemm_time(flops: float, a_elems: int, b_elems: int, out_elems: int, fp8: bool, gpu: GPUSpec) -> float:
    in_bytes = FP8_BYTES if fp8 else BF16_BYTES
    moved = (a_elems + b_elems) * in_bytes + out_elems * OUT_BYTES
    peak = gpu.fp8_flops if fp8 else gpu.bf16_flops
    return max(flops / peak, moved / gpu.hbm_bytes_per_s)


@dataclass(frozen=True)
class Prediction:
    """Predicted step times of one linear layer (forward + backward) in bf16 and FP8.

    ``speedup`` is ``bf16_time_s / fp8_time_s``: an upper bound under the model's assumptions
    (see the module docstring). ``gemm_bound`` is the same ratio with the casts left out.
    """

    m: int
    k: int
    n: int
    recipe: str
    gpu: str
    flops: int
    bf16_time_s: float
    fp8_gemm_time_s: float
    cast_time_s: float
    cast_bytes: int
    mode: str = "compiled"

    @property
    def fp8_time_s(self) -> float:
        return self.fp8_gemm_time_s + self.cast_time_s

    @property
    def speedup(self) -> float:
        return self.bf16_time_s / self.fp8_time_s

    @property
    def gemm_bound(self) -> float:
        return self.bf16_time_s / self.fp8_gemm_time_s

    @property
    def worth_it(self) -> bool:
        """True when the model predicts FP8 to be faster than bf16 for this layer."""
        return self.speedup > 1.0


def predict(
    m: int, k: int, n: int, recipe: str = "rowwise", gpu: str | GPUSpec = "h100-sxm", mode: str = "compiled"
) -> Prediction:
    """Predict bf16 and FP8 training-step time of an ``M x K -> N`` linear layer.

    Args:
        m: tokens (batch x sequence), the rows of the input.
        k: input features.
        n: output features.
        recipe: one of :data:`RECIPES`.
        gpu: a key of :data:`GPUS` or a :class:`GPUSpec` (e.g. with measured ceilings).
        mode: ``compiled`` (torch.compile fuses the casts) or ``eager`` (torchao's separate cast kernels).
            The bf16 baseline is the same in both: a bf16 linear is its three GEMMs either way.

    Raises:
        TypeError: a dimension is not an int.
        ValueError: a dimension is not positive, or the recipe, GPU or mode is unknown.
    """
    _check_shape(m, k, n)
    key = _check_recipe(recipe)
    chosen_mode = check_mode(mode)
    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    gemm_flops = 2 * m * k * n
    # (A elements, B elements, output elements) of forward, grad_input, grad_weight
    gemms = ((m * k, n * k, m * n), (m * n, n * k, m * k), (m * n, m * k, n * k))
    bf16 = sum(_gemm_time(gemm_flops, a, b, c, False, spec) for a, b, c in gemms)
    fp8_gemms = sum(
        _gemm_time(gemm_flops, a, b, c, in_fp8, spec) for (a, b, c), in_fp8 in zip(gemms, RECIPES[key], strict=True)
    )
    moved = cast_bytes(m, k, n, key, chosen_mode)
    result = Prediction(
        m=m,
        k=k,
        n=n,
        recipe=key,
        gpu=spec.name,
        flops=3 * gemm_flops,
        bf16_time_s=bf16,
        fp8_gemm_time_s=fp8_gemms,
        cast_time_s=moved / spec.hbm_bytes_per_s,
        cast_bytes=moved,
        mode=chosen_mode,
    )
    logger.debug("roofline %s", result)
    return result


@dataclass(frozen=True)
class LlamaShape:
    """Architecture numbers of a Llama-style model that fix its projection shapes."""

    name: str
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    head_dim: int


#: Llama-3-8B: hidden 4096, intermediate 14336, 32 heads, 8 KV heads, head_dim 128 (Meta's config.json).
LLAMA3_8B = LlamaShape("Llama-3-8B", 4096, 14336, 32, 8, 128)
#: Llama-3-70B: hidden 8192, intermediate 28672, 64 heads, 8 KV heads, head_dim 128 (Meta's config.json).
LLAMA3_70B = LlamaShape("Llama-3-70B", 8192, 28672, 64, 8, 128)


def llama_projection_shapes(arch: LlamaShape) -> dict[str, tuple[int, int]]:
    """``{projection: (in_features K, out_features N)}`` of one decoder layer."""
    q = arch.n_heads * arch.head_dim
    kv = arch.n_kv_heads * arch.head_dim
    return {
        "q_proj": (arch.hidden, q),
        "k_proj": (arch.hidden, kv),
        "v_proj": (arch.hidden, kv),
        "o_proj": (q, arch.hidden),
        "gate_proj": (arch.hidden, arch.intermediate),
        "up_proj": (arch.hidden, arch.intermediate),
        "down_proj": (arch.intermediate, arch.hidden),
    }
