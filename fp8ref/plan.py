"""Plan an FP8 conversion without weights: which linear layers convert, why the others don't, and
what share of the linear FLOPs will run in FP8.

The model is built from a transformers config on the meta device (no weights, no download), so a
70B-parameter config plans in seconds on a CPU.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from fp8ref.config import TorchaoRecipe
from fp8ref.errors import FP8ConfigError
from fp8ref.module_filter import HEAD_AND_EMBEDDING_NAMES, SizeThreshold, explain, last_component
from fp8ref.roofline import GPUSpec, check_mode, get_gpu, predict
from fp8ref.verify import emulates_float8, is_fp8_layer

logger = logging.getLogger(__name__)

EMBEDDED_CONFIG = "tiny_llama.json"
#: How the plan's header names each mode.
MODE_TEXT = {
    "compiled": "mode compiled: torch.compile fuses torchao's casts",
    "eager": "mode eager: no torch.compile, torchao's casts run as separate kernels",
}
#: PEFT's default adapter name: ``...q_proj.lora_A.default``.
LORA_ADAPTER_NAME = "default"


@dataclass(frozen=True)
class LayerPlan:
    fqn: str
    in_features: int
    out_features: int
    convert: bool
    reason: str
    bf16_time_s: float
    fp8_time_s: float
    lora_adapter: bool = False

    @property
    def macs_per_token(self) -> int:
        return self.in_features * self.out_features

    @property
    def predicted_speedup(self) -> float:
        return self.bf16_time_s / self.fp8_time_s

    def to_dict(self) -> dict[str, Any]:
        """Its fields without the two timings, which the speedup stands for."""
        fields = {name: value for name, value in asdict(self).items() if not name.endswith("_time_s")}
        return {**fields, "predicted_speedup": round(self.predicted_speedup, 4)}


@dataclass(frozen=True)
class ConversionPlan:
    model: str
    recipe: str
    size_aware: bool
    tokens: int
    gpu: str
    layers: tuple[LayerPlan, ...] = field(default=())
    lora_rank: int | None = None
    lora_targets: tuple[str, ...] = ()
    #: ``compiled`` (torch.compile fuses torchao's casts) or ``eager`` (torchao's separate cast kernels).
    mode: str = "compiled"

    @property
    def converted(self) -> tuple[LayerPlan, ...]:
        return tuple(layer for layer in self.layers if layer.convert)

    @property
    def fp8_flop_share(self) -> float:
        """Share of the linear layers' FLOPs that runs in FP8 (FLOPs are proportional to K*N per token)."""
        total = sum(layer.macs_per_token for layer in self.layers)
        return sum(layer.macs_per_token for layer in self.converted) / total if total else 0.0

    @property
    def predicted_linear_speedup(self) -> float:
        """Roofline bound of the speedup of all linear layers together (see :mod:`fp8ref.roofline`)."""
        bf16 = sum(layer.bf16_time_s for layer in self.layers)
        fp8 = sum(layer.fp8_time_s if layer.convert else layer.bf16_time_s for layer in self.layers)
        return bf16 / fp8 if fp8 else 1.0

    @property
    def lora_adapters(self) -> tuple[LayerPlan, ...]:
        """The LoRA adapter layers of a LoRA plan (``...lora_A.default``, ``...lora_B.default``)."""
        return tuple(layer for layer in self.layers if layer.lora_adapter)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in ("model", "recipe", "size_aware", "tokens", "gpu", "mode")},
            "lora": {"rank": self.lora_rank, "targets": list(self.lora_targets)} if self.lora_rank else None,
            "totals": {
                "linear_layers": len(self.layers),
                "converted": len(self.converted),
                "skipped": len(self.layers) - len(self.converted),
                "lora_adapters": len(self.lora_adapters),
                "lora_adapters_converted": sum(layer.convert for layer in self.lora_adapters),
                "fp8_flop_share": round(self.fp8_flop_share, 6),
                "predicted_linear_speedup": round(self.predicted_linear_speedup, 4),
            },
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def render(self) -> str:
        width = max((len(layer.fqn) for layer in self.layers), default=10)
        lora = f", LoRA rank {self.lora_rank} on {','.join(self.lora_targets)}" if self.lora_rank else ""
        lines = [
            f"FP8 plan for {self.model} (recipe {self.recipe}{', size-aware filter' if self.size_aware else ''}{lora}; "
            f"speedups: roofline bound on {self.gpu} at {self.tokens} tokens, {MODE_TEXT[self.mode]})",
            f"{'layer':<{width}}  {'in':>6} {'out':>7}  {'plan':<7} {'bound':>6}  reason",
        ]
        for layer in self.layers:
            verdict = "convert" if layer.convert else "skip"
            lines.append(
                f"{layer.fqn:<{width}}  {layer.in_features:>6} {layer.out_features:>7}  {verdict:<7} "
                f"{layer.predicted_speedup:>5.2f}x  {layer.reason}"
            )
        lines += [
            "",
            f"linear layers: {len(self.layers)}, converted: {len(self.converted)}, "
            f"skipped: {len(self.layers) - len(self.converted)}",
        ]
        if self.lora_rank:
            adapters = self.lora_adapters
            base = sum(layer.fqn.endswith(".base_layer") and layer.convert for layer in self.layers)
            lines.append(
                f"LoRA rank {self.lora_rank}: {base} frozen base layers converted, {len(adapters)} adapter layers, "
                f"{sum(layer.convert for layer in adapters)} of them converted (adapters stay in high precision); "
                "the FLOP share counts the adapters' GEMMs, in high precision"
            )
        lines += [
            f"share of linear FLOPs in FP8: {100 * self.fp8_flop_share:.1f}%",
            f"roofline bound of the linear layers' speedup, {self.mode}: {self.predicted_linear_speedup:.2f}x "
            "(an upper bound over a baseline whose GEMMs run at the rate modelled; attention and other ops are "
            "not counted)",
        ]
        if self.mode == "eager":
            lines.append(
                "eager: torchao runs each scale and cast as separate kernels; torch.compile fuses them "
                "(fp8ref plan --compiled shows that bound)"
            )
        return "\n".join(lines)


def load_config_dict(path: str | Path | None) -> tuple[str, dict[str, Any]]:
    """Read a transformers ``config.json`` (the embedded tiny Llama one when ``path`` is None)."""
    if path is None:
        text = resources.files("fp8ref.data").joinpath(EMBEDDED_CONFIG).read_text(encoding="utf-8")
        return f"embedded {EMBEDDED_CONFIG}", json.loads(text)
    file = Path(path)
    if not file.is_file():
        raise FP8ConfigError(f"config file {str(file)!r} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FP8ConfigError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "model_type" not in data:
        raise FP8ConfigError(f"{file} is not a transformers config.json: it has no 'model_type'")
    return str(file), data


def build_meta_model(config_dict: dict[str, Any]) -> nn.Module:
    """Instantiate the model of a transformers config on the meta device: no memory, no download."""
    try:
        import transformers
    except ImportError as exc:
        raise FP8ConfigError("fp8ref plan needs transformers: pip install transformers") from exc
    model_type = config_dict["model_type"]
    try:
        config = transformers.AutoConfig.for_model(
            model_type, **{k: v for k, v in config_dict.items() if k != "model_type"}
        )
    except ValueError as exc:
        raise FP8ConfigError(f"transformers does not know model_type {model_type!r}: {exc}") from exc
    with torch.device("meta"):
        try:
            model: nn.Module = transformers.AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
        except ValueError:
            model = transformers.AutoModel.from_config(config)  # type: ignore[no-untyped-call]
    return model


def plan_model(
    model: nn.Module,
    *,
    name: str = "model",
    recipe: TorchaoRecipe | str = TorchaoRecipe.ROWWISE,
    size_aware: bool = False,
    tokens: int = 8192,
    gpu: str | GPUSpec = "h100-sxm",
    lora_rank: int | None = None,
    lora_targets: Sequence[str] | None = None,
    mode: str = "compiled",
) -> ConversionPlan:
    """Plan the conversion of every ``nn.Linear`` of ``model`` with fp8ref's module filter.

    ``mode`` is how the FP8 layers will run: ``compiled`` (under ``torch.compile``, which fuses torchao's
    scales and casts) or ``eager`` (torchao's separate cast kernels, each a pass over the tensor); see
    :mod:`fp8ref.roofline`.

    A model that is already converted is judged as :func:`~fp8ref.verify.verify_fp8_status` judges it: a
    torchao ``Float8Linear`` counts as FP8 (``convert``) only when it does not emulate float8; an emulating one
    runs its matmul in high precision, so it is planned at the bf16 time.

    With ``lora_rank`` it plans a LoRA run as PEFT lays it out: each targeted linear layer ``X`` becomes
    ``X.base_layer`` (frozen, same shape) plus the adapters ``X.lora_A.default`` (in -> rank) and
    ``X.lora_B.default`` (rank -> out), and the filter judges each of them by its name and shape.
    ``lora_targets`` are last FQN components (``q_proj``); ``None`` or ``["all"]`` targets every linear layer
    except heads and embeddings (LLaMA-Factory's ``lora_target: all``).
    """
    chosen, chosen_mode, spec = _check_plan_inputs(recipe, mode, tokens, gpu)
    threshold = SizeThreshold(chosen) if size_aware else None
    if lora_rank is not None and lora_rank < 1:
        raise FP8ConfigError(f"--lora-rank must be a positive integer, got {lora_rank}")
    if lora_targets and not lora_rank:
        raise FP8ConfigError("LoRA targets were given without a LoRA rank: add --lora-rank R (for example 16)")
    targets = _lora_targets(model, lora_targets) if lora_rank else ()
    found = {last_component(fqn) for fqn, module in model.named_modules() if isinstance(module, nn.Linear)}
    missing = sorted(set(targets) - found)
    if missing:
        raise FP8ConfigError(
            f"LoRA targets {missing} name no linear layer of {name}; its linear layers are {sorted(found)}"
        )
    layers = []
    for fqn, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        k, n = module.in_features, module.out_features
        if lora_rank and last_component(fqn) in targets:
            shapes = [
                (f"{fqn}.base_layer", k, n, False),
                (f"{fqn}.lora_A.{LORA_ADAPTER_NAME}", k, lora_rank, True),
                (f"{fqn}.lora_B.{LORA_ADAPTER_NAME}", lora_rank, n, True),
            ]
        else:
            shapes = [(fqn, k, n, False)]
        for layer_fqn, in_f, out_f, adapter in shapes:
            layer = module if layer_fqn == fqn else nn.Linear(in_f, out_f, bias=False, device="meta")
            layers.append(_layer_plan(layer, layer_fqn, threshold, tokens, chosen, spec, adapter, chosen_mode))
    return ConversionPlan(
        name,
        chosen.value,
        size_aware,
        tokens,
        spec.name,
        tuple(layers),
        lora_rank or None,
        tuple(targets),
        chosen_mode,
    )


def _check_plan_inputs(
    recipe: TorchaoRecipe | str, mode: str, tokens: int, gpu: str | GPUSpec
) -> tuple[TorchaoRecipe, str, GPUSpec]:
    """The recipe, mode and GPU spec of a plan; an ``FP8ConfigError`` naming the option for a bad one."""
    try:
        chosen = TorchaoRecipe(recipe.strip().lower() if isinstance(recipe, str) else recipe)
    except ValueError:
        valid = ", ".join(r.value for r in TorchaoRecipe)
        raise FP8ConfigError(f"--recipe {recipe!r} is not a torchao recipe; valid: {valid}") from None
    try:
        chosen_mode = check_mode(mode)
    except ValueError as exc:
        raise FP8ConfigError(f"mode: {exc}") from None
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise FP8ConfigError(f"--tokens must be a positive integer (tokens per step), got {tokens!r}")
    if isinstance(gpu, GPUSpec):
        return chosen, chosen_mode, gpu
    try:
        return chosen, chosen_mode, get_gpu(gpu)
    except ValueError as exc:
        raise FP8ConfigError(f"--gpu: {exc}") from None


def _lora_targets(model: nn.Module, requested: Sequence[str] | None) -> tuple[str, ...]:
    names = [name.strip() for name in requested or () if name.strip()]
    if names and names != ["all"]:
        return tuple(dict.fromkeys(names))
    linear = (last_component(fqn) for fqn, m in model.named_modules() if isinstance(m, nn.Linear))
    return tuple(dict.fromkeys(name for name in linear if name not in HEAD_AND_EMBEDDING_NAMES))


def _layer_plan(
    module: nn.Linear,
    fqn: str,
    threshold: SizeThreshold | None,
    tokens: int,
    recipe: TorchaoRecipe,
    gpu: GPUSpec,
    lora_adapter: bool,
    mode: str,
) -> LayerPlan:
    estimate = predict(tokens, module.in_features, module.out_features, recipe.value, gpu, mode)
    fp8_time = estimate.fp8_time_s
    if is_fp8_layer(module):
        convert = not emulates_float8(module)
        reason = (
            "already an FP8 layer"
            if convert
            else "FP8 layer that emulates float8 (emulate=True): high-precision matmul, no speedup"
        )
        fp8_time = fp8_time if convert else estimate.bf16_time_s
    else:
        decision = explain(module, fqn, size_threshold=threshold)
        convert = decision.convert
        reason = decision.detail if decision.convert or decision.reason is None else decision.reason.value
    return LayerPlan(
        fqn=fqn,
        in_features=module.in_features,
        out_features=module.out_features,
        convert=convert,
        reason=reason,
        bf16_time_s=estimate.bf16_time_s,
        fp8_time_s=fp8_time,
        lora_adapter=lora_adapter,
    )


def plan_config(path: str | Path | None, **options: Any) -> ConversionPlan:
    """Plan the conversion of the model of a ``config.json`` (the embedded tiny Llama by default); ``options`` are
    :func:`plan_model`'s keywords after ``model`` and ``name``."""
    name, config_dict = load_config_dict(path)
    return plan_model(build_meta_model(config_dict), name=name, **options)
