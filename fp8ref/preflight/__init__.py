"""``fp8ref preflight CONFIG``: before the first GPU hour, whether FP8 will be on for a training setup, with what,
and whether it pays.

One concept per module: :mod:`.inputs` (the config, its DeepSpeed and accelerate files, the ``TrainingArguments``),
:mod:`.meta_model` (the model without weights, PEFT's LoRA), :mod:`.sandbox` (no lasting effects),
:mod:`.client` (the client's call order and its Trainer's ``Accelerator``), :mod:`.decisions` (what that accelerator
will do), :mod:`.payoff` (``fp8ref plan``'s bound), :mod:`.problems` and :mod:`.report` (the fixes and the verdict).

A tool: it uses fp8ref's helpers, ``plan`` and ``roofline``; the helpers never import it.
"""

from __future__ import annotations

import importlib
from typing import Any

from fp8ref.backends import installed_version
from fp8ref.config import Backend, FP8Settings
from fp8ref.preflight.client import ORDER_TEXT, load_helpers, run_client
from fp8ref.preflight.decisions import read_decisions
from fp8ref.preflight.inputs import Request, build_training_args, read_request
from fp8ref.preflight.meta_model import build_model, resolve_model, wrap_lora
from fp8ref.preflight.payoff import bound_recipe, payoff, plan_both_modes
from fp8ref.preflight.problems import find_problems
from fp8ref.preflight.report import PreflightReport
from fp8ref.preflight.sandbox import sandbox
from fp8ref.roofline import GPUSpec, get_gpu
from fp8ref.upstream_defects import applicable_defects
from fp8ref.verify.recipe import backend_name, recipe_of

VERSIONS = ("torch", "accelerate", "transformers", "torchao", "transformer-engine", "deepspeed", "peft", "llamafactory")

__all__ = ["PreflightReport", "preflight", "preflight_request", "read_request"]


def _uses_deepspeed(request: Request) -> bool:
    return request.deepspeed is not None or request.accelerate_environ.get("ACCELERATE_USE_DEEPSPEED") == "true"


def _backend_of(training_args: Any) -> str | None:
    try:
        backend = FP8Settings.from_training_args(training_args).backend.value
    except ValueError:
        return None
    return {"torchao": "torchao", "te": "te"}.get(backend)


def preflight_request(request: Request, *, helpers: str = "fp8ref", gpu: str | GPUSpec = "h100-sxm") -> PreflightReport:
    """The preflight report of a request read by :func:`~fp8ref.preflight.inputs.read_request`."""
    module = load_helpers(helpers)
    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    source = resolve_model(request.model)
    model = build_model(source)
    importlib.import_module("transformers.trainer")  # before the sandbox takes its snapshot of it
    lora_failure = None
    decisions = None
    plans = None
    with sandbox(distributed=_uses_deepspeed(request)):
        training_args, parser = build_training_args(request)
        tokens = request.seq_len * int(training_args.per_device_train_batch_size)
        per_step = tokens * int(training_args.gradient_accumulation_steps)
        if request.lora_rank:
            try:
                model = wrap_lora(model, request.lora_rank, request.lora_targets)
            except ImportError as exc:  # the run fails there too, before any FP8 call
                lora_failure = f"{type(exc).__name__}: {exc}"
        run = run_client(request.client, module, training_args, model)
        if run.accelerator is not None and lora_failure is None:
            backend = backend_name(run.accelerator)
            recipe = bound_recipe(backend, recipe_of(run.accelerator, Backend.from_accelerate_name(backend)))
            plans = plan_both_modes(model, recipe=recipe, tokens=tokens, gpu=spec)  # before the conversion
            decisions = read_decisions(run.accelerator, training_args, model)
    if plans is None:  # the run stops before prepare: the bound of the plain model
        plans = plan_both_modes(build_model(source), recipe=bound_recipe(None, None), tokens=tokens, gpu=spec)
    fp8_on = bool(decisions and decisions.will_convert and run.failure is None)
    mode = "compiled" if decisions is not None and decisions.compiled else "eager"
    bound = payoff(plans, set(decisions.converted) if decisions else set(), configured_mode=mode, fp8_on=fp8_on)
    defects = applicable_defects(backend=_backend_of(training_args))
    requested = bool(getattr(training_args, "fp8", False))
    problems = find_problems(
        client=request.client,
        helpers=helpers,
        fp8_requested=requested,
        stops_at=run.failure,
        lora_failure=lora_failure,
        decisions=decisions,
        payoff=bound,
        defects=defects,
    )
    return PreflightReport(
        config=request.source,
        client=request.client,
        parser=parser,
        helpers=helpers,
        call_order=ORDER_TEXT[request.client],
        calls=tuple(run.calls),
        model=source.name,
        versions={name: installed_version(name) for name in VERSIONS},
        decisions=decisions,
        payoff=bound,
        tokens_per_step=per_step,
        seq_len=f"sequence length {request.seq_len} ({request.seq_len_source}) x per-device batch "
        f"{training_args.per_device_train_batch_size}",
        stops_at=run.failure,
        lora=f"LoRA rank {request.lora_rank} on {','.join(request.lora_targets)}" if request.lora_rank else None,
        problems=tuple(problems),
        defects=defects,
    )


def preflight(
    config: str,
    overrides: list[str] | None = None,
    *,
    helpers: str = "fp8ref",
    gpu: str | GPUSpec = "h100-sxm",
    model: str | None = None,
    seq_len: int | None = None,
    lora_rank: int | None = None,
    lora_targets: list[str] | None = None,
    accelerate_config: str | None = None,
) -> PreflightReport:
    """Judge a training setup before it runs (see the module docstring). Raises ``FP8ConfigError`` for bad input."""
    request = read_request(
        config,
        overrides,
        model=model,
        seq_len=seq_len,
        lora_rank=lora_rank,
        lora_targets=lora_targets,
        accelerate_config=accelerate_config,
    )
    return preflight_request(request, helpers=helpers, gpu=gpu)
