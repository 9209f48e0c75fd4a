"""Each problem preflight finds, with its fix: where the run stops, why FP8 is off, what ``prepare`` will do wrong,
and whether FP8 pays in the configured mode."""

from __future__ import annotations

from fp8ref.preflight.decisions import Decisions
from fp8ref.preflight.inputs import CLIENT_LLAMAFACTORY
from fp8ref.preflight.payoff import Payoff
from fp8ref.preflight.report import Problem
from fp8ref.upstream_defects import UpstreamDefect

DROP_IN = "run it with fp8ref's helpers: python -m fp8ref.llamafactory train CONFIG (preflight: --helpers fp8ref)"
BACKEND_MISSING = (
    "install Transformer Engine where the run will be (it needs CUDA: fp8ref doctor says what is usable here), and "
    "run preflight there: it judges a backend only where the backend imports"
)
COMPILE_SWITCH = {
    CLIENT_LLAMAFACTORY: "set torch_compile: true in the config",
    "hf": "set torch_compile=True in the TrainingArguments",
}


def _fix_off(client: str, helpers: str, explanation: str | None) -> str:
    if client == CLIENT_LLAMAFACTORY and helpers.startswith("llamafactory"):
        return DROP_IN
    text = explanation or ""
    return text.split("Fix: ", 1)[1] if "Fix: " in text else "call fp8ref.configure_fp8_environment(args) first"


def find_problems(
    *,
    client: str,
    helpers: str,
    fp8_requested: bool,
    stops_at: tuple[str, str] | None,
    lora_failure: str | None,
    decisions: Decisions | None,
    payoff: Payoff,
    defects: tuple[UpstreamDefect, ...],
) -> list[Problem]:
    """The problems in the order the verdict names them: the first is the reason FP8 is off, when it is."""
    found: list[Problem] = []
    if not fp8_requested:
        found.append(Problem("fp8 is not requested in the config", "set fp8: true (fp8=True)"))
    if lora_failure:
        found.append(
            Problem(
                f"LoRA cannot start: {lora_failure}",
                "install a torchao that peft imports (torchao 0.17.0 beside peft 0.18.1), or a newer peft; see "
                "fp8ref doctor",
            )
        )
    if stops_at is not None:
        call, error = stops_at
        if "transformer_engine" in error or "transformer-engine" in error:
            fix = BACKEND_MISSING
        else:
            fix = DROP_IN if helpers.startswith("llamafactory") else "see fp8ref doctor for the backend"
        found.append(Problem(f"the run stops at {call}: {error}", fix))
    if decisions is None:
        return found
    if fp8_requested and not decisions.fp8_enabled:
        found.append(
            Problem(
                f"the Trainer's Accelerator is not in FP8 ({decisions.off_reason})",
                _fix_off(client, helpers, decisions.off_explanation),
            )
        )
    if decisions.prepare_failure:
        crash = next((d for d in defects if d.id == "accelerate-prepare-ao-crash-fp8-off"), None)
        fix = crash.fix if crash is not None and "'config'" in decisions.prepare_failure else DROP_IN
        found.append(Problem(f"accelerator.prepare(model) raises {decisions.prepare_failure}", fix))
    if decisions.fp8_enabled and not decisions.converted and not decisions.prepare_failure:
        found.append(
            Problem(
                "the accelerator is in FP8 but converts no linear layer",
                "check the module filter and the layer sizes (fp8ref plan --config MODEL)",
            )
        )
    if decisions.te_recipe_dropped:
        found.append(
            Problem(
                "under DeepSpeed, accelerate's _prepare_deepspeed drops the TERecipeKwargs: the forward runs with "
                f"{decisions.te_recipe.describe() if decisions.te_recipe else 'TE defaults'}",
                "use fp8ref's helpers (they hand the recipe to the handler that path reads), or accelerate>=1.16",
            )
        )
    if decisions.backend == "TE" and decisions.compiled:
        found.append(
            Problem(
                "Transformer Engine with torch.compile: TE refuses DelayedScaling inside a compiled model",
                "turn torch_compile off for Transformer Engine, or train with torchao",
            )
        )
    if decisions.converted and payoff.configured <= 1.0:
        if payoff.configured_mode == "eager" and payoff.bounds["compiled"] > 1.0:
            found.append(
                Problem(
                    f"eager torchao float8 does not pay here: bound {payoff.configured:.2f}x eager, "
                    f"{payoff.bounds['compiled']:.2f}x compiled",
                    COMPILE_SWITCH.get(client, COMPILE_SWITCH["hf"]),
                )
            )
        else:
            found.append(
                Problem(
                    f"FP8 does not pay at this size: bound {payoff.configured:.2f}x {payoff.configured_mode}",
                    "more tokens per GEMM (sequence length x per-device batch) or a larger model; or train in bf16",
                )
            )
    return found
