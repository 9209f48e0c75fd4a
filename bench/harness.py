"""The benchmark harness: variants built through fp8ref, device checks, timing and ``extra_info``.

Every FP8 variant is built the way a user of fp8ref builds it: ``fp8ref.create_fp8_kwargs(args)``
gives the accelerate handler, and its ``config`` / ``module_filter_func`` (torchao) or its
DelayedScaling fields (Transformer Engine, through ``accelerate.Accelerator.prepare``) are used as is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import fp8ref
from fp8ref.backends import installed_version
from fp8ref.verify import is_fp8_layer

MIN_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class Variant:
    """One way of running the same model: bf16, or FP8 with a backend and recipe."""

    name: str
    backend: str | None  # None: bf16 baseline; "torchao" or "te"
    recipe: str | None  # torchao recipe name; for TE the roofline's "te_delayed"

    @property
    def roofline_recipe(self) -> str | None:
        """The key of fp8ref.roofline.RECIPES that models this variant (None for bf16)."""
        return self.recipe

    def training_args(self) -> types.SimpleNamespace:
        """The training arguments a user would pass to fp8ref for this variant."""
        args = types.SimpleNamespace(fp8=True, fp8_backend=self.backend, fp8_enable_fsdp_float8_all_gather=False)
        if self.backend == "torchao":
            args.fp8_recipe = self.recipe
        return args


BF16 = Variant("bf16", None, None)
AO_TENSORWISE = Variant("torchao-tensorwise", "torchao", "tensorwise")
AO_ROWWISE = Variant("torchao-rowwise", "torchao", "rowwise")
AO_ROWWISE_GW_HP = Variant("torchao-rowwise_with_gw_hp", "torchao", "rowwise_with_gw_hp")
TE_DELAYED = Variant("te-delayed-hybrid", "te", "te_delayed")

TORCHAO_VARIANTS = (AO_TENSORWISE, AO_ROWWISE, AO_ROWWISE_GW_HP)
CPU_VARIANTS = (BF16, *TORCHAO_VARIANTS)
GPU_VARIANTS = (BF16, *TORCHAO_VARIANTS, TE_DELAYED)
VARIANTS_BY_NAME = {v.name: v for v in GPU_VARIANTS}


def compile_modes() -> tuple[bool, ...]:
    """GPU runs are eager; ``FP8REF_BENCH_COMPILE=1`` adds torch.compile runs, ``=only`` runs only those."""
    value = os.environ.get("FP8REF_BENCH_COMPILE", "0").strip().lower()
    if value in ("", "0", "no", "false"):
        return (False,)
    if value == "only":
        return (True,)
    if value in ("1", "yes", "true", "both"):
        return (False, True)
    raise ValueError(f"FP8REF_BENCH_COMPILE={value!r}: use 0, 1 (eager and compiled) or only")


def gpu_skip_reason() -> str | None:
    """Why the GPU benchmarks cannot run here, or None when they can."""
    if not torch.cuda.is_available():
        return "no CUDA device: GPU benchmarks need compute capability >= 8.9 (Ada/Hopper)"
    cap = torch.cuda.get_device_capability()
    if cap < MIN_CAPABILITY:
        name = torch.cuda.get_device_name()
        return f"{name} has compute capability {cap[0]}.{cap[1]}; FP8 GEMMs need >= 8.9 (Ada/Hopper)"
    return None


def environment_info(device: torch.device) -> dict[str, Any]:
    """Device and library versions, so that a saved benchmark JSON describes itself."""
    info: dict[str, Any] = {"device": device.type}
    if device.type == "cuda":
        cap = torch.cuda.get_device_capability(device)
        info["device_name"] = torch.cuda.get_device_name(device)
        info["compute_capability"] = f"{cap[0]}.{cap[1]}"
        info["cuda"] = torch.version.cuda
    else:
        info["device_name"] = f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
        info["compute_capability"] = None
        info["torch_threads"] = torch.get_num_threads()
    info["versions"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchao": installed_version("torchao"),
        "accelerate": installed_version("accelerate"),
        "transformers": installed_version("transformers"),
        "transformer_engine": installed_version("transformer_engine", "transformer-engine"),
        "fp8ref": getattr(fp8ref, "__version__", None),
        "pytest_benchmark": installed_version("pytest-benchmark"),
    }
    return info


def fp8_handler(variant: Variant) -> Any:
    """The accelerate kwargs handler fp8ref builds for this variant; skips when its backend is missing.

    Only a missing backend (fp8ref's ``FP8BackendUnavailableError``) skips; any other error, an
    ``ImportError`` from a bug inside fp8ref included, fails the benchmark.
    """
    if variant.backend is None:
        raise ValueError("the bf16 variant has no FP8 handler")
    try:
        handlers = fp8ref.create_fp8_kwargs(variant.training_args())
    except fp8ref.FP8BackendUnavailableError as exc:
        pytest.skip(f"{variant.name}: backend not available here: {exc}")
    if len(handlers) != 1:
        raise RuntimeError(f"fp8ref.create_fp8_kwargs returned {len(handlers)} handlers for {variant}, expected 1")
    return handlers[0]


def count_fp8_modules(model: nn.Module) -> int:
    """Number of layers in ``model`` that run their GEMMs in FP8 (fp8ref's own test, as verify uses)."""
    return sum(is_fp8_layer(module) for module in model.modules())


def convert_torchao(model: nn.Module, variant: Variant, *, emulate: bool = False) -> dict[str, Any]:
    """Convert ``model`` in place with the config and filter fp8ref builds; return what was used."""
    handler = fp8_handler(variant)
    from torchao.float8 import convert_to_float8_training

    config = handler.config
    if emulate:
        config = dataclasses.replace(config, emulate=True)
    convert_to_float8_training(model, config=config, module_filter_fn=handler.module_filter_func)
    converted = count_fp8_modules(model)
    if converted == 0:
        raise RuntimeError(f"{variant.name}: no layer was converted to Float8Linear; the benchmark would time bf16")
    return {"emulate": bool(config.emulate), "fp8_layers": converted}


@contextlib.contextmanager
def fresh_accelerate_state() -> Iterator[None]:
    """A block that starts from fresh accelerate state and leaves ``os.environ``, ``sys.path`` and accelerate (its
    state and the namespaces a patch changes) as they were (the suite's isolation, :mod:`fp8ref_conformance.kit`)."""
    from fp8ref_conformance.kit.isolation import isolated

    with isolated():
        yield


def accelerate_prepare(variant: Variant, *objects: Any) -> tuple[Any, list[Any]]:
    """``Accelerator(...).prepare(*objects)`` as a user runs it; call inside :func:`fresh_accelerate_state`.

    bf16 uses ``mixed_precision="no"`` on a bf16 model; FP8 variants use
    ``mixed_precision=fp8ref.get_fp8_mixed_precision(args)`` and fp8ref's handler. accelerate converts a
    model to Transformer Engine only when it is prepared together with its optimizer (and raises
    otherwise), so TE callers pass both.
    """
    from accelerate import Accelerator

    if variant.backend is None:
        accelerator = Accelerator(mixed_precision="no")
    else:
        handler = fp8_handler(variant)
        args = variant.training_args()
        accelerator = Accelerator(mixed_precision=fp8ref.get_fp8_mixed_precision(args), kwargs_handlers=[handler])
    prepared = accelerator.prepare(*objects)
    if len(objects) == 1:
        prepared = [prepared]
    return accelerator, list(prepared)


@dataclass
class Timing:
    """Options of one timed benchmark."""

    rounds: int
    warmup_rounds: int
    iterations: int


#: One round: on the CPU the smoke set checks that every variant runs and is recorded, not its speed.
CPU_TIMING = Timing(rounds=1, warmup_rounds=0, iterations=1)
GPU_TIMING = Timing(rounds=10, warmup_rounds=3, iterations=5)


def timed(benchmark: Any, step: Callable[[], object], device: torch.device, timing: Timing) -> None:
    """Time ``step`` with ``benchmark.pedantic``; on CUDA, synchronize around each step.

    pytest-benchmark's timer wraps each call of the target; the target synchronizes the device after
    the step, so the time includes the GPU work, not only the launches. On CUDA the step is also
    bracketed with CUDA events, whose median (after the warm-up calls) lands in ``extra_info``.
    """
    if device.type != "cuda":
        benchmark.pedantic(step, rounds=timing.rounds, warmup_rounds=timing.warmup_rounds, iterations=timing.iterations)
        return

    event_ms: list[float] = []

    def target() -> None:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        event_ms.append(start.elapsed_time(end))

    torch.cuda.synchronize()
    benchmark.pedantic(target, rounds=timing.rounds, warmup_rounds=timing.warmup_rounds, iterations=timing.iterations)
    measured = event_ms[timing.warmup_rounds * timing.iterations :]
    if measured:
        benchmark.extra_info["cuda_event_median_s"] = statistics.median(measured) / 1e3


def maybe_compile(model: nn.Module, compiled: bool) -> nn.Module:
    if not compiled:
        return model
    compiled_model: nn.Module = torch.compile(model)  # type: ignore[assignment]
    return compiled_model


def record(benchmark: Any, device: torch.device, variant: Variant, **fields: Any) -> None:
    """Fill ``benchmark.extra_info`` with the environment, the variant (name, backend, recipe; bf16 activations) and
    the benchmark's own fields."""
    benchmark.extra_info.update(environment_info(device))
    benchmark.extra_info.update(variant=variant.name, backend=variant.backend, recipe=variant.recipe, dtype="bfloat16")
    benchmark.extra_info.update(fields)


def convert_for(variant: Variant, model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """``model`` made ready for ``variant``: converted with torchao in place, or prepared by accelerate for Transformer
    Engine (which converts only a model prepared with its optimizer); the model and what was used."""
    info: dict[str, Any] = {"emulate": False, "fp8_layers": 0}
    if variant.backend == "torchao":
        info = convert_torchao(model, variant)
    elif variant.backend == "te":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        _, (model, _) = accelerate_prepare(variant, model, optimizer)
        info["fp8_layers"] = count_fp8_modules(model)
        if info["fp8_layers"] == 0:
            raise RuntimeError("accelerate.prepare converted no layer to Transformer Engine")
    return model, info


def time_forward_backward(
    benchmark: Any, model: nn.Module, x: torch.Tensor, grad: torch.Tensor, compiled: bool, timing: Timing
) -> None:
    """Time one forward and backward of ``model`` (compiled or not) on ``x``, then check that the timed step really
    ran the backward pass: finite gradients for ``x`` and every parameter."""
    params = list(model.parameters())
    runner = maybe_compile(model, compiled)
    x.requires_grad_(True)

    def step() -> None:
        for p in params:
            p.grad = None
        x.grad = None
        runner(x).backward(grad)

    timed(benchmark, step, x.device, timing)
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in params)
