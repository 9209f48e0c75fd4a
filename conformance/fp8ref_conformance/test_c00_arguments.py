"""C0 arguments: every function accepts any object as ``training_args``; a missing attribute takes its default
(``fp8`` False, ``fp8_backend`` ``"auto"``, ``fp8_enable_fsdp_float8_all_gather`` False), and ``fp8_backend`` is
matched case-insensitively (``"TorchAO"``, ``"TE"``).

Each test compares a call with a duck-typed object (an attribute left out, a backend name in another letter case)
to the same call with the attribute present and the name in lower case. What a function does with its arguments
is the business of its own clause (C1 to C17); C0 judges only that leaving an attribute out, or spelling a name
otherwise, changes nothing. So an implementation that reads ``a.fp8`` directly fails C0 alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from .implementation import Implementation
from .kit.accelerators import reference_fp8_accelerator
from .kit.contract import ALLOWED_ENV_PREFIXES, fp8_arguments
from .kit.env import env_diff, env_snapshot, fp8_env_prefixes
from .kit.messages import mentions_package
from .kit.models import LinearLike, mixed_model
from .kit.packages import hidden_packages
from .kit.standin_te import standin_te
from .kit.verify_outcome import call_verify

#: Modules and names on which two handlers' filters must agree (the same objects for every comparison).
_FILTER_PROBES: list[tuple[str, nn.Module]] = [
    ("layers.0.mlp.fc1", nn.Linear(64, 64)),
    ("layers.0.mlp.odd", nn.Linear(64, 40)),
    ("lm_head", nn.Linear(64, 64)),
    ("encoder.layer.0.output.dense", nn.Linear(64, 64)),
    ("", nn.Linear(32, 32)),
    ("fc", LinearLike(64, 64)),
]


def _handler_summary(handler: Any) -> tuple[Any, ...]:
    """What two handlers must share to be the same FP8 request: class, recipe, and the filter's answers."""
    summary: list[Any] = [type(handler).__qualname__]
    for attr in ("backend", "fp8_format", "amax_history_len", "amax_compute_algo"):
        summary.append((attr, repr(getattr(handler, attr, None))))
    config = getattr(handler, "config", None)
    summary.append(("config", repr(config)))
    module_filter = getattr(handler, "module_filter_func", None)
    if callable(module_filter):
        summary.append(("filter", tuple(bool(module_filter(module, fqn)) for fqn, module in _FILTER_PROBES)))
    return tuple(summary)


def _create(impl: Implementation, args: Any) -> Any:
    result = impl.create_fp8_kwargs(args)
    return [_handler_summary(h) for h in result] if isinstance(result, list) else repr(result)


def _configure(impl: Implementation, args: Any) -> dict[str, str | None]:
    """The FP8 variables configure changed: accelerate's with their values (C8 specifies them), the others only
    by name (the seed's ``FP8_BACKEND`` may echo the name as given: no clause judges its value). Other variables
    are C8d's business (a library imported for the first time may set one)."""
    with env_snapshot(drop_prefixes=fp8_env_prefixes()) as before:
        impl.configure_fp8_environment(args)
        changes = [c for c in env_diff(before, os.environ) if c.name.startswith(ALLOWED_ENV_PREFIXES)]
    return {c.name: c.after if c.name.startswith("ACCELERATE_") else "(changed)" for c in changes}


def _mixed_precision(impl: Implementation, args: Any) -> Any:
    return impl.get_fp8_mixed_precision(args)


_FUNCTIONS: dict[str, Callable[[Implementation, Any], Any]] = {
    "get_fp8_mixed_precision": _mixed_precision,
    "create_fp8_kwargs": _create,
    "configure_fp8_environment": _configure,
}


@contextlib.contextmanager
def _maybe_standin(backend: str, directory: Path) -> Iterator[None]:
    """The stand-in transformer_engine for a TE name (recipe construction only; never a G clause)."""
    if backend.lower() == "te":
        with standin_te(directory):
            yield
    else:
        yield


def _answer(function: str, impl: Implementation, args: Any) -> tuple[Any, ...]:
    """What a call gives: its result, or the class of the exception it raised and whether the message names the
    package to install (a message may quote the name as given)."""
    try:
        return ("returned", _FUNCTIONS[function](impl, args))
    except (ImportError, ValueError) as exc:  # C3 and C4 let these be raised; C0 compares them, nothing more
        named = [p for p in ("torchao", "transformer-engine") if mentions_package(str(exc), p)]
        return ("raised", type(exc).__name__, named)


def _same(function: str, impl: Implementation, duck: Any, explicit: Any, what: str) -> None:
    expected = _answer(function, impl, explicit)
    got = _answer(function, impl, duck)
    assert got == expected, (
        f"{function} with {what} differs from the same call with the attributes spelled out in lower case:\n"
        f"  {got!r}\nvs {expected!r}"
    )


# --------------------------------------------------------------------------- missing attributes

#: (attributes left out, the explicit arguments they stand for)
_OMITTED = {
    "no-fp8": (("fp8",), {"fp8": False}),
    "no-fp8-only-backend": (("fp8", "fp8_enable_fsdp_float8_all_gather"), {"fp8": False}),
    "no-backend": (("fp8_backend",), {"fp8": True}),
    "no-flag": (("fp8_enable_fsdp_float8_all_gather",), {"fp8": True}),
    "only-fp8": (("fp8_backend", "fp8_enable_fsdp_float8_all_gather"), {"fp8": True}),
    "nothing": (("fp8", "fp8_backend", "fp8_enable_fsdp_float8_all_gather"), {"fp8": False}),
}


@pytest.mark.parametrize("function", sorted(_FUNCTIONS))
@pytest.mark.parametrize("case", sorted(_OMITTED))
def test_c0_missing_attributes_take_their_defaults(impl: Implementation, function: str, case: str) -> None:
    """An object without ``fp8`` (False), ``fp8_backend`` (auto) or the flag (False) is answered as if it had
    them at their defaults."""
    omit, values = _OMITTED[case]
    duck = fp8_arguments(fp8=values["fp8"], backend="auto", all_gather=False, omit=omit)
    explicit = fp8_arguments(fp8=values["fp8"], backend="auto", all_gather=False)
    _same(function, impl, duck, explicit, f"an object without {', '.join(omit)}")


def test_c0_any_object_is_accepted(impl: Implementation) -> None:
    """Not only a namespace: a plain object with no attribute at all means FP8 off."""
    plain, explicit = object(), fp8_arguments(fp8=False)
    for function in sorted(_FUNCTIONS):
        _same(function, impl, plain, explicit, "object()")


def _verify_outcome(impl: Implementation, make_acc: Callable[[], Any], args: Any) -> tuple[bool, bool]:
    """``(raised, warned)`` of verify on a fresh accelerator (a verify may remember what it said before)."""
    outcome = call_verify(impl, make_acc(), args)
    return outcome.error is not None, outcome.warned


def _plain_accelerator() -> Any:
    import accelerate

    return accelerate.Accelerator()


def _fp8_in_effect() -> Any:
    acc = reference_fp8_accelerator()
    acc.prepare(mixed_model())
    return acc


_ACCELERATORS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "plain-accelerator": _plain_accelerator,
    "fp8-in-effect": _fp8_in_effect,
}


@pytest.mark.parametrize("acc", sorted(_ACCELERATORS))
@pytest.mark.parametrize("case", ["no-fp8", "no-backend", "only-fp8"])
def test_c0_verify_takes_the_defaults_of_missing_attributes(impl: Implementation, acc: str, case: str) -> None:
    """``verify_fp8_status`` says what it says with the defaults spelled out: no more, no less."""
    omit, values = _OMITTED[case]
    make_acc = _ACCELERATORS[acc]
    explicit = _verify_outcome(impl, make_acc, fp8_arguments(fp8=values["fp8"], backend="auto"))
    duck = _verify_outcome(impl, make_acc, fp8_arguments(fp8=values["fp8"], backend="auto", omit=omit))
    assert duck == explicit, (
        f"verify_fp8_status with an object without {', '.join(omit)} gave (raised, warned)={duck}, with the "
        f"defaults spelled out {explicit}"
    )


# --------------------------------------------------------------------------- letter case

_SPELLINGS = [("TorchAO", "torchao"), ("TORCHAO", "torchao"), ("AUTO", "auto"), ("Auto", "auto"), ("TE", "te")]


@pytest.mark.parametrize("function", sorted(_FUNCTIONS))
@pytest.mark.parametrize("fp8", [True, False], ids=["fp8", "no-fp8"])
@pytest.mark.parametrize(("spelling", "name"), _SPELLINGS, ids=[s for s, _ in _SPELLINGS])
def test_c0_backend_names_in_any_letter_case(
    impl: Implementation, standin_te_dir: Path, function: str, fp8: bool, spelling: str, name: str
) -> None:
    """``fp8_backend="TorchAO"`` is ``"torchao"`` (for ``te`` with the stand-in TE: recipe construction only)."""
    with _maybe_standin(name, standin_te_dir):
        _same(
            function,
            impl,
            fp8_arguments(fp8=fp8, backend=spelling),
            fp8_arguments(fp8=fp8, backend=name),
            f"{spelling!r}",
        )


@pytest.mark.parametrize("acc", ["plain-accelerator", "fp8-in-effect"])
@pytest.mark.parametrize(("spelling", "name"), _SPELLINGS[:4], ids=[s for s, _ in _SPELLINGS[:4]])
def test_c0_verify_matches_backend_names_in_any_letter_case(
    impl: Implementation, acc: str, spelling: str, name: str
) -> None:
    make_acc = _ACCELERATORS[acc]
    explicit = _verify_outcome(impl, make_acc, fp8_arguments(fp8=True, backend=name))
    duck = _verify_outcome(impl, make_acc, fp8_arguments(fp8=True, backend=spelling))
    assert duck == explicit, (
        f"verify_fp8_status with {spelling!r} gave (raised, warned)={duck}, with {name!r} {explicit}"
    )


@pytest.mark.parametrize("function", ["create_fp8_kwargs", "configure_fp8_environment"])
def test_c0_te_in_any_letter_case_where_te_is_not_installed(impl: Implementation, function: str) -> None:
    """With ``transformer_engine`` hidden, ``"TE"`` fails (or not) as ``"te"`` does (C4 judges how)."""
    with hidden_packages("transformer_engine"):
        _same(function, impl, fp8_arguments(fp8=True, backend="TE"), fp8_arguments(fp8=True, backend="te"), "'TE'")
