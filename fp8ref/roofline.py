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

FP8 adds the casts, which are pure memory traffic timed at the HBM bandwidth. Per cast of a bf16
tensor of ``E`` elements into float8 with *dynamic* scaling (what torchao does):

* the amax reduction reads the tensor once (2 bytes per element);
* the cast reads it again (2 bytes) and writes float8 (1 byte);
* each scale is a float32 (4 bytes) written.

Which tensors are cast depends on the recipe (:data:`RECIPES`):

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
    each read once and written in float8 in both layouts (a fused cast-transpose).

The model ignores kernel launch latency, the cost of the amax history update, fusion of a cast
into the kernel that produced its input, and any overlap between casts and GEMMs. Under these
assumptions the predicted speedup is an upper bound of what a real run reaches: GEMMs at the peak
rate, casts at the full bandwidth. For huge shapes it tends to the ratio of the peak rates (2x on
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
    "RECIPES",
    "CastOp",
    "GPUSpec",
    "LlamaShape",
    "Prediction",
    "cast_bytes",
    "cast_ops",
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


#: Published dense peaks. Sources:
#:
#: * H100 SXM5: NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100/):
#:   BF16 1,979 and FP8 3,958 TFLOPS *with sparsity*, i.e. 989.4 and 1,978.9 dense (the dense
#:   figures of the "NVIDIA H100 Tensor Core GPU Architecture" whitepaper); HBM3 3.35 TB/s.
#: * H100 PCIe: same datasheet: BF16 1,513 and FP8 3,026 TFLOPS with sparsity (756 / 1,513 dense);
#:   HBM2e 2.0 TB/s.
#: * H200 SXM: NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200/): the same tensor-core
#:   peaks as H100 SXM (BF16 1,979 / FP8 3,958 TFLOPS with sparsity), HBM3e 4.8 TB/s.
GPUS: Mapping[str, GPUSpec] = {
    "h100-sxm": GPUSpec(
        name="h100-sxm",
        bf16_flops=989.4 * TERA,
        fp8_flops=1978.9 * TERA,
        hbm_bytes_per_s=3.35 * TERA,
        source="NVIDIA H100 datasheet (dense = half the sparse figure)",
    ),
    "h100-pcie": GPUSpec(
        name="h100-pcie",
        bf16_flops=756.5 * TERA,
        fp8_flops=1513.0 * TERA,
        hbm_bytes_per_s=2.0 * TERA,
        source="NVIDIA H100 datasheet (dense = half the sparse figure)",
    ),
    "h200": GPUSpec(
        name="h200",
        bf16_flops=989.4 * TERA,
        fp8_flops=1978.9 * TERA,
        hbm_bytes_per_s=4.8 * TERA,
        source="NVIDIA H200 datasheet (dense = half the sparse figure)",
    ),
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
    """One float8 cast (or float8 layout copy) of a tensor of ``elements`` elements.

    Attributes:
        tensor: which tensor (``"input"``, ``"weight"``, ``"grad_output"``).
        purpose: which GEMM the result feeds, and the scaling.
        elements: number of elements.
        scales: number of float32 scales written.
        bytes_per_element: bytes moved per element (reads + writes).
    """

    tensor: str
    purpose: str
    elements: int
    scales: int
    bytes_per_element: int

    @property
    def bytes(self) -> int:
        return self.elements * self.bytes_per_element + self.scales * SCALE_BYTES


#: dynamic cast: amax read (2) + cast read (2) + float8 write (1)
_DYNAMIC = 2 * BF16_BYTES + FP8_BYTES
#: float8 transpose copy: read (1) + write (1)
_TRANSPOSE = 2 * FP8_BYTES
#: fused delayed-scaling cast-transpose: read bf16 once (2) + write both float8 layouts (2)
_CAST_TRANSPOSE = BF16_BYTES + 2 * FP8_BYTES

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


def linear_train_flops(m: int, k: int, n: int) -> int:
    """FLOPs of a linear layer's forward + backward: three GEMMs of ``2*M*K*N``."""
    _check_shape(m, k, n)
    return 3 * 2 * m * k * n


def cast_ops(m: int, k: int, n: int, recipe: str) -> tuple[CastOp, ...]:
    """The float8 casts (and layout copies) one training step of an ``M x K -> N`` linear performs."""
    _check_shape(m, k, n)
    key = _check_recipe(recipe)
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


def cast_bytes(m: int, k: int, n: int, recipe: str) -> int:
    """Bytes moved by all the casts of :func:`cast_ops`."""
    return sum(op.bytes for op in cast_ops(m, k, n, recipe))


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


def predict(m: int, k: int, n: int, recipe: str = "rowwise", gpu: str | GPUSpec = "h100-sxm") -> Prediction:
    """Predict bf16 and FP8 training-step time of an ``M x K -> N`` linear layer.

    Args:
        m: tokens (batch x sequence), the rows of the input.
        k: input features.
        n: output features.
        recipe: one of :data:`RECIPES`.
        gpu: a key of :data:`GPUS` or a :class:`GPUSpec` (e.g. with measured ceilings).

    Raises:
        TypeError: a dimension is not an int.
        ValueError: a dimension is not positive, or the recipe or GPU is unknown.
    """
    _check_shape(m, k, n)
    key = _check_recipe(recipe)
    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    gemm_flops = 2 * m * k * n
    # (A elements, B elements, output elements) of forward, grad_input, grad_weight
    gemms = ((m * k, n * k, m * n), (m * n, n * k, m * k), (m * n, m * k, n * k))
    bf16 = sum(_gemm_time(gemm_flops, a, b, c, False, spec) for a, b, c in gemms)
    fp8_gemms = sum(
        _gemm_time(gemm_flops, a, b, c, in_fp8, spec) for (a, b, c), in_fp8 in zip(gemms, RECIPES[key], strict=True)
    )
    moved = cast_bytes(m, k, n, key)
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
