"""G1-G4: the GPU clauses (marker ``gpu``). Each test skips, saying why, where no CUDA device of
compute capability 8.9 or more is present; G2 and G3 also need the real Transformer Engine (the
suite's CPU stand-in never serves here), and the torchao parts need torchao.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from .helpers import contract_accepts, importable, is_standin_te, make_args
from .scenarios import (
    assert_numerics,
    float8_names,
    fp8_accelerator,
    mixed_model,
    prepare_and_compare,
    run_numerics,
    tiny_llama,
)

pytestmark = pytest.mark.gpu

MIN_CAPABILITY = (8, 9)


def cuda_fp8_skip_reason() -> str | None:
    """Why FP8 cannot run on this machine's CUDA device, or None when it can."""
    if not torch.cuda.is_available():
        return "no CUDA device (G clauses need compute capability >= 8.9)"
    capability = torch.cuda.get_device_capability()
    if capability < MIN_CAPABILITY:
        name = torch.cuda.get_device_name()
        return f"CUDA device {name} has compute capability {capability[0]}.{capability[1]} < 8.9"
    return None


def real_te_skip_reason() -> str | None:
    """Why the real Transformer Engine cannot be used, or None."""
    try:
        import transformer_engine
        import transformer_engine.pytorch as te
    except ImportError as exc:
        return f"the real Transformer Engine is not importable ({exc}); G2/G3 need it"
    if is_standin_te(transformer_engine) or is_standin_te(te):
        return "only the conformance suite's stand-in transformer_engine is importable; G clauses need the real TE"
    return None


def torchao_skip_reason() -> str | None:
    return None if importable("torchao.float8") else "torchao is not importable (pip install torchao)"


@pytest.fixture
def cuda_fp8() -> str:
    reason = cuda_fp8_skip_reason()
    if reason:
        pytest.skip(reason)
    return "cuda"


@pytest.fixture
def real_te(cuda_fp8: str) -> types.ModuleType:
    reason = real_te_skip_reason()
    if reason:
        pytest.skip(reason)
    te: types.ModuleType = sys.modules["transformer_engine.pytorch"]
    return te


@pytest.fixture
def torchao_on_cuda(cuda_fp8: str) -> str:
    reason = torchao_skip_reason()
    if reason:
        pytest.skip(reason)
    return cuda_fp8


RECIPES = {"rowwise": False, "tensorwise": True}


# --------------------------------------------------------------------------- G1


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_g1_conversion_on_cuda(impl: types.ModuleType, torchao_on_cuda: str, recipe: str) -> None:
    """C10 on CUDA: exactly the accepted layers become Float8Linear, values kept, all on the GPU."""
    args = make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    result = prepare_and_compare(impl, args, mixed_model().to(torch.bfloat16), device="cuda")
    assert "fc_in" in result.converted
    assert not result.handler.config.emulate, "G1 needs the real float8 kernels (emulate=False)"


@pytest.mark.parametrize("widths", [(64, 128, 64), (1024, 4096, 1024)], ids=["small", "large"])
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_g1_numerics_on_cuda(
    impl: types.ModuleType, torchao_on_cuda: str, recipe: str, widths: tuple[int, ...]
) -> None:
    """C11 on CUDA with real float8 kernels (emulate=False), bf16 model."""
    args = make_args(fp8=True, backend="torchao", all_gather=RECIPES[recipe])
    (handler,) = impl.create_fp8_kwargs(args)
    assert not handler.config.emulate, "G1 needs the real float8 kernels (emulate=False)"
    assert_numerics(run_numerics(impl, args, widths=widths, device="cuda"))


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


def _te_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(64, 128), act=nn.GELU(), fc2=nn.Linear(128, 64), lm_head=nn.Linear(64, 64))
    ).to(torch.bfloat16)


def test_g2_te_converts_accepted_layers_and_runs_under_delayed_scaling(
    impl: types.ModuleType, real_te: types.ModuleType
) -> None:
    """Real Transformer Engine only (never the stand-in)."""
    args = make_args(fp8=True, backend="te")
    model = _te_model()
    accepted = {name for name, m in model.named_modules() if contract_accepts(m, name)}
    with _spy_fp8_autocast(real_te) as calls:
        acc = fp8_accelerator(impl, args)
        prepared = acc.prepare(model)
        modules = dict(acc.unwrap_model(prepared).named_modules())
        not_te = sorted(n for n in accepted if not isinstance(modules[n], real_te.Linear))
        assert not not_te, f"accepted layers not converted to transformer_engine.pytorch.Linear: {not_te}"
        out = prepared(torch.randn(32, 64, device="cuda", dtype=torch.bfloat16))
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
    impl: types.ModuleType, real_te: types.ModuleType
) -> None:
    """Real Transformer Engine only. accelerate's TE conversion returns from the whole recursion at the
    first nn.Linear with a dimension not divisible by 16; an implementation must not let that happen."""
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            early=nn.Linear(64, 40),
            back=nn.Linear(40, 64),
            block=nn.Sequential(OrderedDict(fc1=nn.Linear(64, 128), fc2=nn.Linear(128, 64))),
            later=nn.Linear(64, 64),
        )
    ).to(torch.bfloat16)
    acc = fp8_accelerator(impl, make_args(fp8=True, backend="te"))
    modules = dict(acc.unwrap_model(acc.prepare(model)).named_modules())
    expected = ["block.fc1", "block.fc2", "later"]
    missing = sorted(n for n in expected if not isinstance(modules[n], real_te.Linear))
    assert not missing, f"eligible layers after an odd-sized one were left unconverted: {missing}"


# --------------------------------------------------------------------------- G4

BACKEND_REASONS = {"torchao": torchao_skip_reason, "te": real_te_skip_reason}


@pytest.mark.parametrize("backend", sorted(BACKEND_REASONS))
def test_g4_tiny_llama_trains_on_the_gpu(impl: types.ModuleType, cuda_fp8: str, backend: str) -> None:
    """Conversion and one training step of a tiny Llama under accelerator.prepare, per backend."""
    reason = BACKEND_REASONS[backend]()
    if reason:
        pytest.skip(reason)
    args = make_args(fp8=True, backend=backend)
    acc = fp8_accelerator(impl, args)
    model = acc.prepare(tiny_llama(dtype=torch.bfloat16))
    optimizer = acc.prepare(torch.optim.AdamW(model.parameters(), lr=1e-3))
    unwrapped = acc.unwrap_model(model)
    if backend == "torchao":
        assert float8_names(unwrapped), "no Float8Linear after prepare"
    else:
        te = sys.modules["transformer_engine.pytorch"]
        assert any(isinstance(m, te.Linear) for m in unwrapped.modules()), "no TE Linear after prepare"
    on_cpu = [n for n, t in [*unwrapped.named_parameters(), *unwrapped.named_buffers()] if t.device.type != "cuda"]
    assert not on_cpu, f"left on the CPU: {on_cpu}"
    ids = torch.randint(0, 128, (2, 16), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    loss = model(input_ids=ids, labels=ids).loss
    acc.backward(loss)
    optimizer.step()
    assert torch.isfinite(loss).item(), f"loss {loss.item()}"
