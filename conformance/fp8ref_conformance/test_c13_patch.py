"""C13 ``patch_accelerator_for_fp8``: after ``configure_fp8_environment(a)``, every ``Accelerator``
holds the implementation's FP8 handler, whatever other handlers it is given, in a list or in a tuple (accelerate
takes any sequence; the Trainer happens to pass a list).

The plugin puts ``Accelerator`` (its class namespace and accelerate's module bindings) and
``os.environ`` back after every test, so each test patches a pristine class.

Each test judges its own part: a patch that imports ``transformer_engine`` on the torchao path where TE is not
installed is C13d's defect, so there the tests of C13a, C13b and C13c are blocked by C13d (see
:func:`.kit.verdicts.apply_patch`); which layers a TE conversion leaves unconverted is G3's.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from .implementation import Implementation
from .kit.accelerators import assert_te_conversion, linear_types
from .kit.contract import contract_accepts, fp8_arguments
from .kit.env import env_snapshot, fp8_env_prefixes
from .kit.isolation import reset_accelerate_state
from .kit.messages import mentions_package
from .kit.models import ODD_EARLY_LAYER_ELIGIBLE, LinearLike, mixed_model, odd_early_layer_model
from .kit.packages import hidden_packages
from .kit.standin_te import standin_te
from .kit.verdicts import apply_patch

FP8_HANDLER_ATTRS = ("fp8_recipe_handler", "ao_recipe_handler", "te_recipe_handler", "msamp_recipe_handler")
BACKENDS = ["torchao", "auto", "te"]
#: How the handlers are passed to ``Accelerator(kwargs_handlers=...)``: accelerate accepts any sequence.
CONTAINERS: dict[str, Any] = {"list": list, "tuple": tuple}


@contextlib.contextmanager
def _patched(impl: Implementation, args: Any, standin_dir: Path | None = None, *, own: bool = False) -> Iterator[None]:
    """configure, then patch; for ``te`` with the stand-in TE on the path (recipe construction only). ``own``: the
    test is C13d's or C13e's, whose subject is how the patch itself fails; else a TE import on the torchao path
    blocks the test on C13d."""
    with contextlib.ExitStack() as stack:
        if standin_dir is not None:
            stack.enter_context(standin_te(standin_dir))
        stack.enter_context(env_snapshot(drop_prefixes=fp8_env_prefixes()))
        impl.configure_fp8_environment(args)
        if own:
            impl.patch_accelerator_for_fp8()
        else:
            apply_patch(impl, args.fp8_backend)
        yield


def _new_accelerator(**kwargs: Any) -> Any:
    import accelerate

    reset_accelerate_state()
    return accelerate.Accelerator(**kwargs)


def _fp8_handlers(acc: Any) -> dict[str, Any]:
    return {attr: h for attr in FP8_HANDLER_ATTRS if (h := getattr(acc, attr, None)) is not None}


_FILTER_PROBES: list[tuple[str, Any]] = [
    ("layers.0.mlp.fc1", lambda: nn.Linear(64, 64)),
    ("layers.0.mlp.odd", lambda: nn.Linear(64, 40)),
    ("lm_head", lambda: nn.Linear(64, 64)),
    ("encoder.layer.0.output.dense", lambda: nn.Linear(64, 64)),
    ("", lambda: nn.Linear(32, 32)),
    ("fc", lambda: LinearLike(64, 64)),
]


def _assert_same_handler(got: Any, expected: Any) -> None:
    assert type(got) is type(expected), f"holds {type(got).__qualname__}, expected {type(expected).__qualname__}"
    if hasattr(expected, "config"):  # torchao
        assert got.config == expected.config, (
            f"the injected torchao config differs from create_fp8_kwargs(a)'s: {got.config} vs {expected.config}"
        )
        assert callable(got.module_filter_func), (
            "the injected handler has no module filter: accelerate's default filter would be used"
        )
        torch.manual_seed(0)
        for fqn, make in _FILTER_PROBES:
            module = make()
            a, b = bool(got.module_filter_func(module, fqn)), bool(expected.module_filter_func(module, fqn))
            assert a == b, f"the injected filter says {a} for {fqn!r}, the implementation's filter says {b}"
    else:  # Transformer Engine
        for attr in ("fp8_format", "amax_history_len", "amax_compute_algo"):
            assert getattr(got, attr) == getattr(expected, attr), (
                f"{attr}={getattr(got, attr)!r}, expected {getattr(expected, attr)!r}"
            )


def _assert_holds_impl_handler(acc: Any, expected: Any, situation: str) -> None:
    assert acc.fp8_enabled, f"{situation}: fp8_enabled is False"
    handlers = _fp8_handlers(acc)
    assert len(handlers) == 1, f"{situation}: expected one FP8 handler, found {handlers}"
    (got,) = handlers.values()
    try:
        _assert_same_handler(got, expected)
    except AssertionError as exc:
        raise AssertionError(
            f"{situation}: {exc} (accelerate's own default instead of the implementation's?)"
        ) from None


def _standin_for(backend: str, directory: Path) -> Path | None:
    return directory if backend == "te" else None


def _ddp() -> Any:
    from accelerate import DistributedDataParallelKwargs

    return DistributedDataParallelKwargs(find_unused_parameters=True)


# --------------------------------------------------------------------------- a


@pytest.mark.parametrize("backend", BACKENDS)
def test_c13a_plain_accelerator_holds_the_implementation_handler(
    impl: Implementation, standin_te_dir: Path, backend: str
) -> None:
    """For ``te`` the stand-in transformer_engine is used (recipe construction only; never a G clause)."""
    args = fp8_arguments(fp8=True, backend=backend)
    with _patched(impl, args, _standin_for(backend, standin_te_dir)):
        (expected,) = impl.create_fp8_kwargs(args)
        _assert_holds_impl_handler(_new_accelerator(), expected, "Accelerator()")


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_c13a_accelerator_with_ddp_handler_holds_the_implementation_handler(
    impl: Implementation, standin_te_dir: Path, backend: str, container: str
) -> None:
    """The Trainer always passes other kwargs handlers; the FP8 handler must be injected anyway, whatever
    sequence holds them. For ``te`` the stand-in transformer_engine is used (recipe construction only)."""
    args = fp8_arguments(fp8=True, backend=backend)
    with _patched(impl, args, _standin_for(backend, standin_te_dir)):
        (expected,) = impl.create_fp8_kwargs(args)
        ddp = _ddp()
        acc = _new_accelerator(kwargs_handlers=CONTAINERS[container]([ddp]))
        _assert_holds_impl_handler(acc, expected, f"Accelerator(kwargs_handlers=<{container}: DDP handler>)")
        assert acc.ddp_handler is ddp, "the DDP handler passed in was dropped"


def test_c13a_all_gather_recipe_is_injected(impl: Implementation) -> None:
    args = fp8_arguments(fp8=True, backend="torchao", all_gather=True)
    with _patched(impl, args):
        (expected,) = impl.create_fp8_kwargs(args)
        _assert_holds_impl_handler(_new_accelerator(kwargs_handlers=[_ddp()]), expected, "all-gather recipe")


@pytest.mark.parametrize("recipe", ["rowwise", "tensorwise"])
def test_c13a_layers_built_through_the_patch_carry_the_implementation_config(impl: Implementation, recipe: str) -> None:
    """What ``prepare`` builds from the injected handler: ``Float8Linear`` layers carrying the config
    ``create_fp8_kwargs(a)`` builds (so an emulating recipe, or accelerate's own default, injected by the patch
    alone shows here; whether ``create_fp8_kwargs``'s own config emulates is C5e's)."""
    from torchao.float8.float8_linear import Float8Linear

    args = fp8_arguments(fp8=True, backend="torchao", all_gather=recipe == "tensorwise")
    with _patched(impl, args):
        (expected,) = impl.create_fp8_kwargs(args)
        acc = _new_accelerator(kwargs_handlers=[_ddp()])
        model = acc.unwrap_model(acc.prepare(mixed_model()))
    layers = {name: m.config for name, m in model.named_modules() if isinstance(m, Float8Linear)}
    assert layers, f"prepare converted no layer after configure and patch (fp8_enabled={acc.fp8_enabled})"
    other = sorted(name for name, config in layers.items() if config != expected.config)
    assert not other, (
        f"layers built through the patch carry another config than create_fp8_kwargs(a)'s: {other} "
        f"({layers[other[0]] if other else ''} vs {expected.config})"
    )


# --------------------------------------------------------------------------- b


def _explicit_ao() -> Any:
    from accelerate.utils import AORecipeKwargs
    from torchao.float8 import Float8LinearConfig

    def only_fc(module: nn.Module, fqn: str) -> bool:
        return fqn == "fc"

    return AORecipeKwargs(config=Float8LinearConfig.from_recipe_name("rowwise_with_gw_hp"), module_filter_func=only_fc)


@dataclasses.dataclass(frozen=True)
class _Fields:
    """A handler's fields when it was built: each value's identity, and a copy (a change in place shows too)."""

    identities: dict[str, int]
    copies: dict[str, Any]

    @classmethod
    def of(cls, handler: Any) -> _Fields:
        fields = vars(handler)
        return cls({k: id(v) for k, v in fields.items()}, {k: copy.deepcopy(v) for k, v in fields.items()})

    def assert_unchanged(self, handler: Any) -> None:
        """Kept means unchanged: the same object, holding the same config and filter (not the implementation's)."""
        now = vars(handler)
        assert sorted(now) == sorted(self.copies), f"the explicit handler's fields changed: {sorted(now)}"
        for name, value in self.copies.items():
            assert id(now[name]) == self.identities[name] and now[name] == value, (
                f"the explicit handler's {name} was changed: {value!r} -> {now[name]!r}"
            )


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("with_ddp", [False, True], ids=["alone", "with-ddp"])
@pytest.mark.parametrize("backend", ["torchao", "auto"])
def test_c13b_explicit_fp8_handler_is_kept(impl: Implementation, backend: str, with_ddp: bool, container: str) -> None:
    """The explicit handler is the one FP8 handler, unchanged: its config (``rowwise_with_gw_hp``, not the
    implementation's recipe) and its filter (``fc`` only, not the implementation's), whatever sequence holds it."""
    with _patched(impl, fp8_arguments(fp8=True, backend=backend)):
        explicit = _explicit_ao()
        fields = _Fields.of(explicit)
        handlers = [explicit, _ddp()] if with_ddp else [explicit]
        acc = _new_accelerator(kwargs_handlers=CONTAINERS[container](handlers))
        found = _fp8_handlers(acc)
        assert found == {"ao_recipe_handler": explicit}, f"explicit handler replaced or duplicated: {found}"
        assert acc.fp8_enabled
        fields.assert_unchanged(explicit)


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_c13b_explicit_te_handler_is_kept_when_configured_for_torchao(
    impl: Implementation, standin_te_dir: Path, container: str
) -> None:
    """An explicit FP8 handler of another backend is not joined by an injected one, and keeps its recipe. Uses
    the stand-in transformer_engine to build the TE handler (recipe construction only; never a G clause)."""
    from accelerate.utils import TERecipeKwargs

    with standin_te(standin_te_dir), _patched(impl, fp8_arguments(fp8=True, backend="torchao")):
        explicit = TERecipeKwargs(fp8_format="E4M3", amax_history_len=4, amax_compute_algo="most_recent")
        fields = _Fields.of(explicit)
        acc = _new_accelerator(kwargs_handlers=CONTAINERS[container]([explicit]))
        found = _fp8_handlers(acc)
        assert found == {"te_recipe_handler": explicit}, f"explicit handler replaced or joined: {found}"
        fields.assert_unchanged(explicit)


# --------------------------------------------------------------------------- c


@pytest.mark.parametrize("backend", ["torchao", "te"])
def test_c13c_second_patch_changes_nothing(impl: Implementation, standin_te_dir: Path, backend: str) -> None:
    """After a second ``patch_accelerator_for_fp8()``, ``Accelerator()`` and ``Accelerator(kwargs_handlers=[DDP])``
    hold what they held after the first (a double injection would also show here: accelerate refuses two
    handlers of one class). Whether that is the right handler is C13a's. For ``te`` the stand-in TE is used
    (recipe construction only)."""
    args = fp8_arguments(fp8=True, backend=backend)
    with _patched(impl, args, _standin_for(backend, standin_te_dir)):
        first = {what: _handler_state(make()) for what, make in _ACCELERATORS.items()}
        impl.patch_accelerator_for_fp8()
        second = {what: _handler_state(make()) for what, make in _ACCELERATORS.items()}
    changed = {what: (first[what], second[what]) for what in first if first[what] != second[what]}
    assert not changed, f"the second patch changed the FP8 handlers (after the first, after the second): {changed}"


def _handler_state(acc: Any) -> dict[str, tuple[Any, ...]]:
    """The FP8 handlers an Accelerator holds, each as what makes it that handler: class, config or TE recipe, and
    the answers of its module filter (``None`` without one)."""
    state = {}
    for attr, handler in _fp8_handlers(acc).items():
        module_filter = getattr(handler, "module_filter_func", None)
        torch.manual_seed(0)
        answers = tuple(bool(module_filter(make(), fqn)) for fqn, make in _FILTER_PROBES) if module_filter else None
        recipe = tuple(repr(getattr(handler, a, None)) for a in ("fp8_format", "amax_history_len", "amax_compute_algo"))
        state[attr] = (type(handler).__qualname__, repr(getattr(handler, "config", None)), recipe, answers)
    return state


_ACCELERATORS = {
    "Accelerator()": lambda: _new_accelerator(),
    "Accelerator(kwargs_handlers=[DDP])": lambda: _new_accelerator(kwargs_handlers=[_ddp()]),
}


# --------------------------------------------------------------------------- d, e


@pytest.mark.parametrize("backend", ["torchao", "auto"])
def test_c13d_torchao_path_works_where_te_is_not_installed(impl: Implementation, backend: str) -> None:
    """transformer_engine hidden (``sys.modules`` entry set to None, restored afterwards): configure, the patch,
    the Accelerators built after it and ``prepare`` raise nothing (which handler they hold is C13a's)."""
    args = fp8_arguments(fp8=True, backend=backend)
    with hidden_packages("transformer_engine"), _patched(impl, args, own=True):
        for make in _ACCELERATORS.values():
            make().prepare(nn.Sequential(nn.Linear(64, 64)))


@pytest.mark.parametrize("backend", ["torchao", "auto"])
def test_c13d_torchao_path_does_not_import_transformer_engine(
    impl: Implementation, standin_te_dir: Path, backend: str
) -> None:
    """An importable (stand-in) transformer_engine must stay unimported on the torchao path; the
    stand-in only makes an import attempt visible in ``sys.modules``."""
    import accelerate

    args = fp8_arguments(fp8=True, backend=backend)
    with standin_te(standin_te_dir), _patched(impl, args, own=True):
        imported = sorted(n for n in sys.modules if n.split(".")[0] == "transformer_engine")
        assert not imported, f"configure and the patch on the torchao path imported {imported}"
        reset_accelerate_state()
        acc = accelerate.Accelerator()
        imported = sorted(n for n in sys.modules if n.split(".")[0] == "transformer_engine")
        assert not imported, f"Accelerator() after the patch, on the torchao path, imported {imported}"
        acc.prepare(nn.Sequential(nn.Linear(64, 64)))
        imported = sorted(n for n in sys.modules if n.split(".")[0] == "transformer_engine")
        assert not imported, f"prepare after the patch, on the torchao path, imported {imported}"


def test_c13e_te_where_te_is_not_installed_raises_import_error(impl: Implementation) -> None:
    """transformer_engine hidden. The ImportError may come from configure, the patch, or the first
    Accelerator() built after it, but it must come, and name transformer-engine."""
    import accelerate

    args = fp8_arguments(fp8=True, backend="te")
    with hidden_packages("transformer_engine"), env_snapshot(drop_prefixes=fp8_env_prefixes()):
        with pytest.raises(ImportError) as info:
            impl.configure_fp8_environment(args)
            impl.patch_accelerator_for_fp8()
            reset_accelerate_state()
            accelerate.Accelerator()
        assert mentions_package(str(info.value), "transformer-engine"), (
            f"the ImportError does not name transformer-engine: {info.value}"
        )


# --------------------------------------------------------------------------- a, TE conversion


@pytest.mark.parametrize("with_ddp", [False, True], ids=["alone", "with-ddp"])
def test_c13a_te_prepare_converts_eligible_layers_after_an_odd_early_layer(
    impl: Implementation, standin_te_dir: Path, with_ddp: bool
) -> None:
    """What only the patch gives with Transformer Engine (G3's property, on the CPU), on both sides: every layer
    the filter accepts becomes a ``te.Linear``, every other one (odd-sized, ``lm_head``) keeps its type.

    accelerate's default handler already matches the TE recipe that configure's ``ACCELERATE_FP8_*``
    variables describe, so the handler checks above pass for ``te`` with no patch at all. What the
    patch adds is the implementation's conversion: accelerate's own stops the whole recursion at the
    first ``nn.Linear`` with a dimension not divisible by 16. Uses the stand-in transformer_engine
    (high-precision ``te.Linear``; conversion logic only, never a G clause verdict).
    """
    model = odd_early_layer_model()
    expected = sorted(name for name, m in model.named_modules() if contract_accepts(m, name))
    assert expected == list(ODD_EARLY_LAYER_ELIGIBLE), expected
    before = linear_types(model)
    with _patched(impl, fp8_arguments(fp8=True, backend="te"), standin_te_dir):
        import transformer_engine.pytorch as te

        acc = _new_accelerator(kwargs_handlers=[_ddp()]) if with_ddp else _new_accelerator()
        prepared, _ = acc.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
        try:
            assert_te_conversion(before, set(expected), acc.unwrap_model(prepared), te.Linear)
        except AssertionError as exc:
            raise AssertionError(
                f"after configure and patch: {exc} (accelerate's own TE conversion stops at the first odd-sized "
                "layer and converts heads: the patch must replace it with one that follows the filter)"
            ) from None
