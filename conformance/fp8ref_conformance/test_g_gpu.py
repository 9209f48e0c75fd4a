"""G1-G5: the GPU clauses, each with a CPU twin.

Every G-test is parametrized by device. The ``cuda`` case is marked ``gpu`` and skips, saying why,
where no CUDA device of compute capability 8.9 or more is present, or where the real Transformer
Engine (G2, G3, G4[te], G5), torchao or DeepSpeed (G5) is missing; it alone gives a G clause's verdict. The ``cpu`` twin
runs the same body under ``-m "not gpu"``: torchao with its real CPU float8 kernels at small sizes
(``emulate=True`` for the large G1 shapes), and for Transformer Engine the suite's stand-in, whose
``te.Linear`` is a high-precision layer and whose ``fp8_autocast`` only records its arguments. The
twins are honest checks of the implementation's conversion and recipe logic through
``accelerator.prepare``, not of FP8 on a GPU; they exist so that a GPU run can fail only for device
reasons.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from .implementation import Implementation
from .kit.accelerators import assert_te_conversion, float8_names, linear_types, prepare_and_compare
from .kit.capabilities import cuda_fp8_skip_reason, real_te_skip_reason, torchao_skip_reason
from .kit.contract import contract_accepts, fp8_arguments
from .kit.deepspeed_run import CASES, Pending, case_label, check_te_run, cuda_run, cuda_skip_reason, reads
from .kit.env import env_snapshot, fp8_env_prefixes
from .kit.models import ODD_EARLY_LAYER_ELIGIBLE, mixed_model, odd_early_layer_model, tiny_llama
from .kit.numerics import assert_numerics, require_recipe, run_numerics
from .kit.standin_te import standin_te
from .kit.verdicts import apply_patch

#: The CUDA case is the G clause; the CPU case is its twin (stand-in TE, small or emulated torchao).
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """``cpu`` (the twin) or ``cuda`` (the G clause; skipped without a suitable device)."""
    name: str = request.param
    if name == "cuda":
        reason = cuda_fp8_skip_reason()
        if reason:
            pytest.skip(reason)
    return name


@pytest.fixture
def te_module(device: str, standin_te_dir: Path) -> Iterator[types.ModuleType]:
    """``transformer_engine.pytorch``: on CUDA the real one (skip without it), on the CPU the stand-in."""
    if device == "cuda":
        reason = real_te_skip_reason()
        if reason:
            pytest.skip(reason)
        yield sys.modules["transformer_engine.pytorch"]
        return
    with standin_te(standin_te_dir):
        import transformer_engine.pytorch as te

        yield te


@pytest.fixture
def torchao_device(device: str) -> str:
    reason = torchao_skip_reason()
    if reason:
        pytest.skip(reason)
    return device


RECIPES = {"rowwise": False, "tensorwise": True}


# --------------------------------------------------------------------------- G1


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_g1_conversion(impl: Implementation, torchao_device: str, recipe: str) -> None:
    """C10 on the device: exactly the accepted layers become Float8Linear, values kept, all on the device."""
    args = fp8_arguments(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    result = prepare_and_compare(impl, args, mixed_model().to(torch.bfloat16), device=torchao_device)
    assert "fc_in" in result.converted
    assert not result.handler.config.emulate, "G1 needs the real float8 kernels (emulate=False)"


SMALL = (64, 128, 64)
LARGE = (1024, 4096, 1024)

#: AdamW learning rate of the large case. At C11's default (3e-3) the 1024-4096-1024 MLP memorizes
#: its 64 samples: the bf16 loss reaches 0.0107 in 20 steps, and FP8 rounding alone put fp8ref 16%
#: (rowwise, 0.0124) and 43% (tensorwise, 0.0153) away from it (CPU, emulated). At 1e-4 the loss is still mid-descent
#: after 20 steps (see :func:`test_g1_numerics`), where a 10% gap means something.
LARGE_LR = 1e-4


@pytest.mark.parametrize(
    ("device", "widths"),
    [
        pytest.param("cpu", SMALL, id="cpu-small"),
        pytest.param("cuda", SMALL, id="cuda-small", marks=pytest.mark.gpu),
        pytest.param("cuda", LARGE, id="cuda-large", marks=pytest.mark.gpu),
    ],
    indirect=["device"],
)
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_g1_numerics(impl: Implementation, torchao_device: str, recipe: str, widths: tuple[int, ...]) -> None:
    """C11 with real float8 kernels (emulate=False), bf16 model, C11's thresholds (forward SQNR >= 20 dB,
    gradients >= 15 dB, final loss within 10% of bf16's after 20 AdamW steps).

    The CPU twin runs the small case with torchao's real CPU kernels (the same run as C11's CPU test).
    The large case needs the device: real CPU kernels at that size take minutes, and even emulated it
    costs 20-100 s per recipe on the CI machine, over the suite's budget. Its setup was chosen on the
    CPU with ``emulate=True``: with ``lr=LARGE_LR`` the bf16 loss goes from 0.438 to 0.061 in 20 steps
    (a sevenfold fall, still far above the ~0.011 that memorizing the 64 samples reaches at C11's
    3e-3), and FP8 ends at 0.0616 (rowwise, 1.5% from bf16) and 0.0617 (tensorwise, 1.8%); so the
    10% criterion separates a correct implementation from a wrong one instead of measuring rounding
    noise around a memorized zero.
    """
    args = require_recipe(impl, recipe)  # numerics of a recipe the implementation does not build: blocked (C5/C6)
    (handler,) = impl.create_fp8_kwargs(args)
    assert not handler.config.emulate, "G1 needs the real float8 kernels (emulate=False)"
    if widths == LARGE:
        result = run_numerics(impl, args, widths=widths, device=torchao_device, lr=LARGE_LR)
    else:
        result = run_numerics(impl, args, widths=widths, device=torchao_device)
    if widths == LARGE:
        assert result.ref_losses[-1] >= 0.05 * result.ref_losses[0], (
            f"precondition: the bf16 loss fell to {result.ref_losses[-1]:.4f} from {result.ref_losses[0]:.4f}; "
            "the large case's task is being memorized and the 10% criterion would measure noise"
        )
    assert_numerics(result)


# --------------------------------------------------------------------------- G2, G3


@contextlib.contextmanager
def _spy_fp8_autocast(te: types.ModuleType) -> Iterator[list[dict[str, Any]]]:
    """Record the arguments of every ``transformer_engine.pytorch.fp8_autocast`` entered."""
    calls: list[dict[str, Any]] = []
    original = getattr(te, "fp8_autocast")  # noqa: B009

    @contextlib.contextmanager
    def recording(*args: Any, **kwargs: Any) -> Iterator[None]:
        calls.append({"args": args, **kwargs})
        with original(*args, **kwargs):
            yield

    setattr(te, "fp8_autocast", recording)  # noqa: B010 - te is a module only known at run time
    try:
        yield calls
    finally:
        setattr(te, "fp8_autocast", original)  # noqa: B010


@contextlib.contextmanager
def _seed_user_accelerator(impl: Implementation, args: Any) -> Iterator[Any]:
    """What a user of the seed does: ``configure_fp8_environment(a)``, ``patch_accelerator_for_fp8()``,
    then a plain ``Accelerator()``; so the implementation's own TE conversion (installed by the patch)
    is what runs. The environment starts without accelerate/FP8 variables and is restored afterwards
    (the plugin also restores the Accelerator class)."""
    import accelerate
    from accelerate.state import AcceleratorState

    with env_snapshot(drop_prefixes=fp8_env_prefixes()):
        impl.configure_fp8_environment(args)
        apply_patch(impl, args.fp8_backend)  # on the torchao path (G4) a TE import there is C13d's: blocked
        AcceleratorState._reset_state(True)
        yield accelerate.Accelerator()


def _te_model(device: str) -> nn.Module:
    """On ``device`` before ``prepare``, as the Trainer places a model before it builds its Accelerator."""
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(64, 128), act=nn.GELU(), fc2=nn.Linear(128, 64), lm_head=nn.Linear(64, 64))
    ).to(device=device, dtype=torch.bfloat16)


def test_g2_te_converts_accepted_layers_and_runs_under_delayed_scaling(
    impl: Implementation, device: str, te_module: types.ModuleType
) -> None:
    """On CUDA the real Transformer Engine (the clause); the CPU twin uses the stand-in TE, so it checks
    the conversion and the recipe handed to ``fp8_autocast``, not FP8 itself."""
    real_te = te_module
    args = fp8_arguments(fp8=True, backend="te")
    model = _te_model(device)
    accepted = {name for name, m in model.named_modules() if contract_accepts(m, name)}
    before = linear_types(model)
    with contextlib.ExitStack() as stack:
        calls = stack.enter_context(_spy_fp8_autocast(real_te))
        acc = stack.enter_context(_seed_user_accelerator(impl, args))
        # accelerate converts to TE only with the model and its optimizer in one prepare call.
        prepared, _ = acc.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
        # Both sides: the accepted layers are TE layers, and lm_head (rejected by name) is still an nn.Linear.
        assert_te_conversion(before, accepted, acc.unwrap_model(prepared), real_te.Linear)
        out = prepared(torch.randn(32, 64, device=device, dtype=torch.bfloat16))
    assert torch.isfinite(out.float()).all()
    entered = [c for c in calls if c.get("enabled", True)]
    assert entered, "the forward pass did not run inside fp8_autocast"
    recipe = entered[-1].get("fp8_recipe")
    from transformer_engine.common.recipe import DelayedScaling, Format

    assert isinstance(recipe, DelayedScaling), f"the recipe is {recipe!r}, not DelayedScaling"
    assert recipe.fp8_format == Format.HYBRID, recipe
    assert recipe.amax_history_len == 16, recipe
    assert recipe.amax_compute_algo == "max", recipe


def test_g3_te_odd_early_layer_does_not_stop_later_conversion(
    impl: Implementation, device: str, te_module: types.ModuleType
) -> None:
    """accelerate's TE conversion returns from the whole recursion at the first nn.Linear with a
    dimension not divisible by 16; an implementation must not let that happen. On CUDA the real TE (the
    clause); the CPU twin uses the stand-in TE (conversion logic only)."""
    real_te = te_module
    model = odd_early_layer_model().to(device=device, dtype=torch.bfloat16)
    before = linear_types(model)
    with _seed_user_accelerator(impl, fp8_arguments(fp8=True, backend="te")) as acc:
        prepared, _ = acc.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    # Both sides: the eligible layers after the odd-sized ones are TE layers; those and lm_head are not.
    assert_te_conversion(before, set(ODD_EARLY_LAYER_ELIGIBLE), acc.unwrap_model(prepared), real_te.Linear)


# --------------------------------------------------------------------------- G4

BACKEND_REASONS = {"torchao": torchao_skip_reason, "te": real_te_skip_reason}


@pytest.mark.parametrize("backend", sorted(BACKEND_REASONS))
def test_g4_tiny_llama_trains(impl: Implementation, device: str, standin_te_dir: Path, backend: str) -> None:
    """Conversion and one training step of a tiny Llama under accelerator.prepare, per backend, as a user of the
    implementation runs them (configure, patch, ``Accelerator()``): the conversion is the implementation's. The
    CPU twin runs torchao's real CPU kernels and, for ``te``, the stand-in TE (high precision)."""
    with contextlib.ExitStack() as stack:
        if device == "cpu" and backend == "te":
            stack.enter_context(standin_te(standin_te_dir))
        else:
            reason = BACKEND_REASONS[backend]()
            if reason:
                pytest.skip(reason)
        _tiny_llama_step(impl, device, backend)


@contextlib.contextmanager
def _default_device_off_the_model(acc: Any, device: str) -> Iterator[None]:
    """On a GPU machine torch's default device (the CPU) is not the model's: a layer that is built on the default
    device once accelerate has placed the model stays on the CPU, and G4 sees it. On the CPU twin the default device
    is the model's own, so no such layer could be seen; here it becomes ``meta`` from the moment accelerate's
    ``prepare_model`` has placed the model until ``prepare`` returns, so that the same layer is off the model's
    device on the CPU as well. Layers built before the placement are placed with the rest, as on a GPU."""
    if device != "cpu":
        yield
        return
    place, default = acc.prepare_model, torch.get_default_device()

    def prepare_model(*args: Any, **kwargs: Any) -> Any:
        placed = place(*args, **kwargs)
        torch.set_default_device("meta")
        return placed

    acc.prepare_model = prepare_model
    try:
        yield
    finally:
        torch.set_default_device(default)
        del acc.prepare_model


def _tiny_llama_step(impl: Implementation, device: str, backend: str) -> None:
    args = fp8_arguments(fp8=True, backend=backend)
    llama = tiny_llama(dtype=torch.bfloat16)
    with _seed_user_accelerator(impl, args) as acc:
        with _default_device_off_the_model(acc, device):
            # One call: accelerate converts to TE only with the model and its optimizer together.
            model, optimizer = acc.prepare(llama, torch.optim.AdamW(llama.parameters(), lr=1e-3))
        _check_and_step(acc, model, optimizer, device, backend)


def _check_and_step(acc: Any, model: Any, optimizer: Any, device: str, backend: str) -> None:
    unwrapped = acc.unwrap_model(model)
    if backend == "torchao":
        assert float8_names(unwrapped), "no Float8Linear after prepare"
    else:
        import transformer_engine.pytorch as te

        assert any(isinstance(m, te.Linear) for m in unwrapped.modules()), "no TE Linear after prepare"
    elsewhere = [n for n, t in [*unwrapped.named_parameters(), *unwrapped.named_buffers()] if t.device.type != device]
    assert not elsewhere, f"not on {device} (layers built on torch's default device after placement?): {elsewhere}"
    ids = torch.randint(0, 128, (2, 16), device=device, generator=torch.Generator(device).manual_seed(0))
    loss = model(input_ids=ids, labels=ids).loss
    acc.backward(loss)
    optimizer.step()
    assert torch.isfinite(loss).item(), f"loss {loss.item()}"


# --------------------------------------------------------------------------- G5


@reads("te")
@pytest.mark.parametrize("device", DEVICES)
def test_g5_deepspeed_te_forward_runs_with_the_c7_recipe(
    request: pytest.FixtureRequest, impl_name: str, impl: Implementation, tmp_path: Path, device: str
) -> None:
    """G5: C16d (``test_c16_deepspeed.py``) with the real Transformer Engine on CUDA, one process (ZeRO-2 with the
    config as a dict, ZeRO-3 as a JSON path), in the DeepSpeed child (:mod:`.kit.deepspeed_run`). The CPU twin judges
    the stand-in's runs of C16d the same way: the conversion and the recipe the forward runs with, not FP8 itself."""
    impl.require("configure_fp8_environment", "patch_accelerator_for_fp8")
    if device == "cpu":
        pending: Pending = request.getfixturevalue("deepspeed_run")
    else:
        reason = cuda_skip_reason() or real_te_skip_reason()
        if reason:
            pytest.skip(reason)
        plan = ";".join(f"{case}:te" for case in CASES)
        pending = cuda_run(impl_name, tmp_path / "g5.json", plan, "the CUDA Transformer Engine runs", runs=2)
    for case in CASES:
        check_te_run(pending.runs(case)["te"], f"{device}, {case_label(case)}, Transformer Engine")
