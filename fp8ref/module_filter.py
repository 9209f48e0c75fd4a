"""Which ``nn.Linear`` layers to convert to FP8, and why.

The rules, in order (the first that applies decides):

1. only ``nn.Linear`` (or a subclass) is converted;
2. LoRA adapters stay in high precision, whatever their rank: a layer with a FQN component (any
   component, not only the last) in :data:`LORA_ADAPTER_COMPONENTS` is skipped. PEFT names the adapter
   modules after them (``...q_proj.lora_A.default``) and keeps the frozen base layer as
   ``...q_proj.base_layer``, which is converted. Adapter GEMMs are rank-sized, where float8 casts cost
   more than they save, and the adapters are the only weights that train (clause C17b). This is a
   structural rule, separate from rule 4: only the last component decides head and embedding names;
3. both ``in_features`` and ``out_features`` must be divisible by 16 (the float8 GEMM kernels need it);
4. heads and embeddings stay in high precision: a layer whose *last* FQN component is one of
   :data:`HEAD_AND_EMBEDDING_NAMES` is skipped. Only the last component counts, and only as a whole
   word: ``encoder.layer.3.output.dense`` (BERT's largest layers), ``attention.output.dense`` and
   ``output_proj`` are converted;
5. optionally (``size_aware=True``) layers too small to gain from FP8 are skipped (see
   :class:`SizeThreshold`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from fp8ref.config import TorchaoRecipe

HEAD_AND_EMBEDDING_NAMES: frozenset[str] = frozenset(
    {"lm_head", "embed_out", "embed_in", "wte", "wpe", "output", "classifier", "score", "head"}
)
#: FQN components that PEFT gives LoRA adapter modules (``...q_proj.lora_A.default``): never converted.
LORA_ADAPTER_COMPONENTS: frozenset[str] = frozenset({"lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"})
FP8_DIM_MULTIPLE = 16


class SkipReason(str, enum.Enum):
    """Why a module is not converted."""

    NOT_LINEAR = "not an nn.Linear"
    DIM_NOT_DIVISIBLE_BY_16 = "dimension not divisible by 16"
    HEAD_OR_EMBEDDING = "head or embedding layer"
    LORA_ADAPTER = "LoRA adapter layer: kept in high precision"
    BELOW_SIZE_THRESHOLD = "too small to gain from FP8"


@dataclass(frozen=True)
class FilterDecision:
    """The filter's answer for one module, with the reason for a skip."""

    fqn: str
    convert: bool
    reason: SkipReason | None
    detail: str

    def __str__(self) -> str:
        verdict = "convert" if self.convert else f"skip ({self.reason.value if self.reason else ''})"
        return f"{self.fqn or '<root>'}: {verdict}: {self.detail}"


@dataclass(frozen=True)
class SizeThreshold:
    """The size below which FP8 is expected to be slower than bf16, for one torchao recipe.

    The numbers are torchao's (``torchao.float8.float8_linear_utils._auto_filter_for_recipe``, torchao
    0.18), derived from its H100 microbenchmarks of a linear layer's forward + backward
    (README of ``torchao/float8``, tables "rowwise scaling" and "tensorwise scaling"). With N the
    output features and K the input features, a layer is skipped when:

    - tensorwise: ``K <= 4096 and N <= 1024``;
    - rowwise: ``N <= 2048``, or ``K <= 1024``, or ``N <= 4096 and K <= 2048``.

    torchao publishes no thresholds for ``rowwise_with_gw_hp``. Its forward and grad-input GEMMs are
    rowwise and its grad-weight GEMM stays in bf16, so it gains less than rowwise at every shape:
    fp8ref applies the rowwise thresholds to it, a lower bound on what should be skipped.
    """

    recipe: TorchaoRecipe

    def too_small(self, in_features: int, out_features: int) -> bool:
        n, k = out_features, in_features
        if self.recipe is TorchaoRecipe.TENSORWISE:
            return k <= 4096 and n <= 1024
        return n <= 2048 or k <= 1024 or (n <= 4096 and k <= 2048)


def last_component(fqn: str) -> str:
    """The text after the final ``.`` of ``fqn`` (the whole FQN when it has no dot)."""
    return fqn.rsplit(".", 1)[-1]


def lora_adapter_component(fqn: str) -> str | None:
    """The first component of ``fqn`` that marks a LoRA adapter (``lora_A``, ...), or ``None``."""
    return next((part for part in fqn.split(".") if part in LORA_ADAPTER_COMPONENTS), None)


def is_lora_adapter(fqn: str) -> bool:
    """Whether ``fqn`` names a LoRA adapter module or a module inside one."""
    return lora_adapter_component(fqn) is not None


def explain(module: Any, fqn: str, *, size_threshold: SizeThreshold | None = None) -> FilterDecision:
    """Decide whether ``module`` (named ``fqn`` in its model) is converted to FP8, and say why.

    Pure: it only reads ``type(module)``, ``in_features`` and ``out_features``.
    """
    import torch.nn as nn  # here, not at the top: ``import fp8ref`` does not import torch

    if not isinstance(module, nn.Linear):
        return FilterDecision(fqn, False, SkipReason.NOT_LINEAR, f"{type(module).__name__} is not an nn.Linear")
    adapter = lora_adapter_component(fqn)
    if adapter is not None:
        return FilterDecision(
            fqn,
            False,
            SkipReason.LORA_ADAPTER,
            f"FQN component '{adapter}' is a PEFT adapter: rank-sized GEMMs, and the only weights that train",
        )
    k, n = module.in_features, module.out_features
    if k % FP8_DIM_MULTIPLE or n % FP8_DIM_MULTIPLE:
        return FilterDecision(
            fqn,
            False,
            SkipReason.DIM_NOT_DIVISIBLE_BY_16,
            f"in_features={k}, out_features={n}: float8 GEMMs need both divisible by {FP8_DIM_MULTIPLE}",
        )
    name = last_component(fqn)
    if name in HEAD_AND_EMBEDDING_NAMES:
        return FilterDecision(
            fqn, False, SkipReason.HEAD_OR_EMBEDDING, f"'{name}' is a head/embedding name: kept in high precision"
        )
    if size_threshold is not None and size_threshold.too_small(k, n):
        return FilterDecision(
            fqn,
            False,
            SkipReason.BELOW_SIZE_THRESHOLD,
            f"{k}->{n} is below torchao's {size_threshold.recipe.value} size threshold",
        )
    return FilterDecision(fqn, True, None, f"nn.Linear {k}->{n}")


def module_filter(module: Any, fqn: str) -> bool:
    """The default filter (rules 1 to 4): ``True`` when ``module`` should be converted to FP8."""
    return explain(module, fqn).convert


@dataclass(frozen=True)
class ModuleFilter:
    """A picklable, comparable ``module_filter_func`` for ``AORecipeKwargs``.

    ``ModuleFilter()`` applies rules 1 to 4; ``ModuleFilter(size_threshold=SizeThreshold(recipe))`` adds
    the size rule.
    """

    size_threshold: SizeThreshold | None = None

    def __call__(self, module: Any, fqn: str) -> bool:
        return self.explain(module, fqn).convert

    def explain(self, module: Any, fqn: str) -> FilterDecision:
        return explain(module, fqn, size_threshold=self.size_threshold)


def make_module_filter(recipe: TorchaoRecipe | str | None = None, *, size_aware: bool = False) -> ModuleFilter:
    """The filter for ``recipe``; with ``size_aware`` it also skips layers too small to gain from FP8."""
    if not size_aware:
        return ModuleFilter()
    chosen = TorchaoRecipe(recipe) if recipe is not None else TorchaoRecipe.ROWWISE
    return ModuleFilter(size_threshold=SizeThreshold(chosen))
