"""Helpers of the conformance suite: argument objects, environment snapshots, log capture, SQNR,
hiding a package, and the stand-in ``transformer_engine`` package.

Nothing here uses the implementation under test beyond the five contract functions, so the suite
judges any module (the reference ``fp8ref`` or another project's ``fp8_utils``) the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import re
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The five functions of the contract (CONTRACT.md, "The API under test").
CONTRACT_FUNCTIONS = (
    "create_fp8_kwargs",
    "get_fp8_mixed_precision",
    "configure_fp8_environment",
    "verify_fp8_status",
    "patch_accelerator_for_fp8",
)

#: Last FQN components that C9c excludes from conversion.
HEAD_NAMES = ("lm_head", "embed_out", "embed_in", "wte", "wpe", "output", "classifier", "score", "head")

#: FQN components that mark a LoRA adapter layer (C17b): in ANY component, not only the last.
LORA_ADAPTER_COMPONENTS = ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B")

#: Environment prefixes that C8d allows ``configure_fp8_environment`` to touch.
ALLOWED_ENV_PREFIXES = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_FP8_", "FP8_")

VALID_BACKENDS = ("auto", "torchao", "te")

_MISSING = object()


# --------------------------------------------------------------------------- training arguments


def make_args(
    fp8: Any = True,
    backend: Any = "auto",
    all_gather: Any = False,
    *,
    omit: tuple[str, ...] = (),
) -> types.SimpleNamespace:
    """A plain training-arguments object with the three attributes the contract reads.

    ``omit`` names attributes to leave out, to check the contract's defaults for missing ones.
    """
    values = {"fp8": fp8, "fp8_backend": backend, "fp8_enable_fsdp_float8_all_gather": all_gather}
    return types.SimpleNamespace(**{k: v for k, v in values.items() if k not in omit})


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class EnvChange:
    """One variable that differs between two environment snapshots (``None`` means unset)."""

    name: str
    before: str | None
    after: str | None


def env_diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[EnvChange]:
    """The variables that were added, removed or changed between two snapshots, sorted by name."""
    names = sorted(set(before) | set(after))
    return [EnvChange(name, before.get(name), after.get(name)) for name in names if before.get(name) != after.get(name)]


def restore_environ(saved: Mapping[str, str]) -> None:
    """Make ``os.environ`` exactly ``saved`` again (removing added variables, resetting changed ones)."""
    for name in list(os.environ):
        if name not in saved:
            del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@contextlib.contextmanager
def env_snapshot(
    replace: Mapping[str, str] | None = None, *, drop_prefixes: tuple[str, ...] = ()
) -> Iterator[dict[str, str]]:
    """Snapshot ``os.environ``, optionally reshape it, and restore the snapshot on exit.

    ``drop_prefixes`` removes variables with those prefixes for the duration, ``replace`` sets
    variables; the yielded dict is the environment as it stands at the start of the block.
    """
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith(drop_prefixes) and drop_prefixes:
                del os.environ[name]
        if replace:
            os.environ.update(replace)
        yield dict(os.environ)
    finally:
        restore_environ(saved)


def fp8_env_prefixes() -> tuple[str, ...]:
    """Prefixes of the variables that accelerate or FP8 helpers read (dropped for a clean start)."""
    return ("ACCELERATE_", "FP8_")


# --------------------------------------------------------------------------- logging


@dataclass
class LogCapture:
    """Log records emitted while a :func:`capture_logs` block ran."""

    records: list[logging.LogRecord] = field(default_factory=list)

    def at_least(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level]

    def describe(self, level: int = logging.WARNING) -> str:
        lines = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.at_least(level)]
        return "; ".join(lines) if lines else "(none)"


@contextlib.contextmanager
def capture_logs(root_level: int = logging.DEBUG) -> Iterator[LogCapture]:
    """Record every log record that any logger emits, whatever its handlers or ``propagate``.

    The root logger's level is lowered to ``root_level`` for the block so that INFO records of
    loggers without their own level are emitted; loggers with an explicit level keep it (what they
    would not log is, honestly, not logged).
    """
    capture = LogCapture()
    original = logging.Logger.callHandlers
    root = logging.getLogger()
    old_level = root.level

    def recording_call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        capture.records.append(record)
        original(self, record)

    logging.Logger.callHandlers = recording_call_handlers  # type: ignore[method-assign]
    root.setLevel(root_level)
    try:
        yield capture
    finally:
        logging.Logger.callHandlers = original  # type: ignore[method-assign]
        root.setLevel(old_level)


# --------------------------------------------------------------------------- numerics


def sqnr_db(reference: Any, output: Any) -> float:
    """Signal-to-quantization-noise ratio in dB: ``20 * log10(|ref| / |ref - out|)``.

    Computed in float64; ``inf`` when the tensors are equal, ``-inf`` when the reference is zero
    and the output is not, ``nan`` when either holds a non-finite value.
    """
    import torch

    ref = torch.as_tensor(reference).detach().to(torch.float64).cpu()
    out = torch.as_tensor(output).detach().to(torch.float64).cpu()
    if ref.shape != out.shape:
        raise ValueError(f"shapes differ: {tuple(ref.shape)} vs {tuple(out.shape)}")
    if not (torch.isfinite(ref).all() and torch.isfinite(out).all()):
        return math.nan
    signal = torch.linalg.vector_norm(ref).item()
    noise = torch.linalg.vector_norm(ref - out).item()
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 20.0 * math.log10(signal / noise)


# --------------------------------------------------------------------------- hiding packages


def _matches(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@contextlib.contextmanager
def hidden_packages(*roots: str) -> Iterator[None]:
    """Make the packages ``roots`` not importable for the block, then put everything back.

    Their entries in ``sys.modules`` are set aside and the root names set to ``None``, so ``import``
    raises ``ModuleNotFoundError`` and ``importlib.util.find_spec`` returns ``None`` (what
    accelerate's availability checks see when a package is not installed).

    This is in-process: an implementation that cached an availability answer earlier in the
    process would still see the package. The suite uses it only for Transformer Engine, which the
    torchao paths never need; torchao itself is hidden in a fresh subprocess (see
    :func:`run_probe_subprocess`).
    """
    saved = {name: mod for name, mod in sys.modules.items() if _matches(name, roots)}
    for name in saved:
        del sys.modules[name]
    for root in roots:
        sys.modules[root] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in [n for n in sys.modules if _matches(n, roots)]:
            del sys.modules[name]
        sys.modules.update(saved)


#: The lowest CUDA compute capability with FP8 tensor cores (Ada, Hopper).
MIN_FP8_COMPUTE_CAPABILITY = (8, 9)


def cuda_fp8_skip_reason() -> str | None:
    """Why CUDA FP8 kernels cannot run here (no CUDA device, or one without FP8 tensor cores), else ``None``."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device: FP8 kernels need a GPU of compute capability >= 8.9"
    capability = torch.cuda.get_device_capability()
    if capability < MIN_FP8_COMPUTE_CAPABILITY:
        return f"CUDA device of compute capability {capability[0]}.{capability[1]} < 8.9 has no FP8 tensor cores"
    return None


def importable(module: str) -> bool:
    """Whether ``import module`` works right now (the contract's notion of "available")."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- stand-in TE

STANDIN_TE_VERSION = "0.0.0+conformance.standin"
STANDIN_MARKER = "__fp8_conformance_standin__"


_STANDIN_TE_PYTORCH = '''\
"""{doc}"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

{marker} = True

#: The arguments of every ``fp8_autocast`` entered, in order (the suite's CPU twins read it).
AUTOCAST_CALLS = []


def _params_dtype(params_dtype):
    return params_dtype if params_dtype is not None else torch.get_default_dtype()


class Linear(nn.Module):
    """High-precision stand-in of ``te.Linear`` (``F.linear``): no FP8, not an ``nn.Linear``."""

    def __init__(self, in_features, out_features, bias=True, params_dtype=None, device="cpu", **kwargs):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dtype = _params_dtype(params_dtype)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, inp):
        return F.linear(inp, self.weight, self.bias)


class LayerNorm(nn.Module):
    """High-precision stand-in of ``te.LayerNorm``."""

    def __init__(self, hidden_size, eps=1e-5, params_dtype=None, device="cpu", **kwargs):
        super().__init__()
        self.normalized_shape = (hidden_size,)
        self.eps = eps
        dtype = _params_dtype(params_dtype)
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(hidden_size, dtype=dtype, device=device))

    def forward(self, inp):
        return F.layer_norm(inp, self.normalized_shape, self.weight, self.bias, self.eps)


class TransformerLayer(nn.Module):
    """Present only because accelerate looks it up; the suite never builds one."""


@contextlib.contextmanager
def fp8_autocast(enabled=True, calibrating=False, fp8_recipe=None, fp8_group=None, **kwargs):
    """Records its arguments and runs the block unchanged (no FP8)."""
    AUTOCAST_CALLS.append(dict(enabled=enabled, calibrating=calibrating, fp8_recipe=fp8_recipe, **kwargs))
    yield


def __getattr__(name):
    raise AttributeError(
        f"transformer_engine.pytorch.{{name}} is not provided by the conformance stand-in "
        "(it has high-precision Linear and LayerNorm layers and a recording fp8_autocast, no kernels)"
    )
'''

_STANDIN_TE_RECIPE = '''\
"""{doc}"""

import dataclasses
import enum


class Format(enum.Enum):
    E4M3 = "E4M3"
    E5M2 = "E5M2"
    HYBRID = "HYBRID"


@dataclasses.dataclass
class DelayedScaling:
    """The fields of TE's recipe, with TE's defaults; unknown arguments raise ``TypeError`` as TE does."""

    margin: int = 0
    fp8_format: Format = Format.HYBRID
    amax_history_len: int = 1024
    amax_compute_algo: str = "max"
    scaling_factor_compute_algo: object = None
    override_linear_precision: tuple = (False, False, False)
    reduce_amax: bool = True
    fp8_dpa: bool = False
    fp8_mha: bool = False
    interval: int = 1


@dataclasses.dataclass
class MXFP8BlockScaling:
    margin: int = 0
    fp8_format: Format = Format.E4M3
'''


def write_standin_te(directory: Path) -> Path:
    """Write a stand-in ``transformer_engine`` package with installed metadata into ``directory``.

    It is importable as ``transformer_engine`` and ``transformer_engine.pytorch`` and has a
    ``transformer-engine`` dist-info, which is what accelerate's ``is_transformer_engine_available``
    (``importlib.util.find_spec`` plus ``importlib.metadata``) and ``TERecipeKwargs.__post_init__``
    check. It has no FP8 kernels: ``te.Linear`` and ``te.LayerNorm`` are high-precision layers (not
    ``nn.Linear`` subclasses, like TE's), ``fp8_autocast`` records its arguments in
    ``transformer_engine.pytorch.AUTOCAST_CALLS`` and changes nothing, and
    ``transformer_engine.common.recipe`` has ``Format``, ``DelayedScaling`` and ``MXFP8BlockScaling``.
    That is enough to check recipe construction (C7, C8f, C13) and an implementation's conversion and
    recipe logic through ``accelerator.prepare`` (the CPU twins of G2-G4) without a GPU. It never
    serves a G clause verdict on CUDA; :func:`is_standin_te` tells it apart.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pkg = directory / "transformer_engine"
    (pkg / "pytorch").mkdir(parents=True, exist_ok=True)
    (pkg / "common").mkdir(parents=True, exist_ok=True)
    doc = "Stand-in transformer_engine written by the fp8ref conformance suite; it has no kernels."
    (pkg / "__init__.py").write_text(f'"""{doc}"""\n{STANDIN_MARKER} = True\n__version__ = "{STANDIN_TE_VERSION}"\n')
    (pkg / "pytorch" / "__init__.py").write_text(_STANDIN_TE_PYTORCH.format(doc=doc, marker=STANDIN_MARKER))
    (pkg / "pytorch" / "fp8.py").write_text(
        f'"""{doc}"""\n\n\ndef check_mxfp8_support():\n    return False, "conformance stand-in: no MXFP8"\n'
    )
    (pkg / "common" / "__init__.py").write_text(f'"""{doc}"""\n{STANDIN_MARKER} = True\n')
    (pkg / "common" / "recipe.py").write_text(_STANDIN_TE_RECIPE.format(doc=doc))
    dist_info = directory / f"transformer_engine-{STANDIN_TE_VERSION}.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: transformer-engine\nVersion: {STANDIN_TE_VERSION}\nSummary: {doc}\n"
    )
    (dist_info / "top_level.txt").write_text("transformer_engine\n")
    (dist_info / "RECORD").write_text("")
    (dist_info / "INSTALLER").write_text("fp8ref-conformance\n")
    return directory


def is_standin_te(module: types.ModuleType | None) -> bool:
    """Whether ``module`` (``transformer_engine`` or a submodule) is the suite's stand-in."""
    return bool(module is not None and getattr(module, STANDIN_MARKER, False))


@contextlib.contextmanager
def standin_te(directory: Path) -> Iterator[Path]:
    """Put the stand-in TE on ``sys.path`` for the block; remove it and its modules afterwards."""
    write_standin_te(directory)
    saved = {name: mod for name, mod in sys.modules.items() if _matches(name, ("transformer_engine",))}
    for name in saved:
        del sys.modules[name]
    entry = str(directory)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield directory
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)
        for name in [n for n in sys.modules if _matches(n, ("transformer_engine",))]:
            del sys.modules[name]
        sys.modules.update(saved)
        importlib.invalidate_caches()


# --------------------------------------------------------------------------- the C9 rule


def is_lora_adapter_fqn(fqn: str) -> bool:
    """C17b: a module is an adapter layer when a component of its FQN (any, not only the last) is one of
    :data:`LORA_ADAPTER_COMPONENTS`, as a whole component (``lora_A_proj`` is not one)."""
    return any(part in LORA_ADAPTER_COMPONENTS for part in fqn.split("."))


def contract_accepts(module: Any, fqn: str) -> bool:
    """What clauses C9 and C17b say the module filter must answer (used as the expectation in tests).

    Two separate name rules: only the LAST component decides head and embedding names (C9c/d), while an
    adapter component anywhere in the FQN rejects the module (C17b, a structural rule)."""
    import torch.nn as nn

    if not isinstance(module, nn.Linear):
        return False
    if module.in_features % 16 or module.out_features % 16:
        return False
    if is_lora_adapter_fqn(fqn):
        return False
    return fqn.rsplit(".", 1)[-1] not in HEAD_NAMES


# --------------------------------------------------------------------------- messages

_WORD = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


def mentions_word(text: str, word: str) -> bool:
    """Whether ``text`` names ``word`` as a word of its own (case-insensitive)."""
    return re.search(_WORD.format(re.escape(word)), text, flags=re.IGNORECASE) is not None


def mentions_package(text: str, package: str) -> bool:
    """Whether an error message names the package to install: ``torchao`` or ``transformer-engine``.

    The distribution name is required as written (``transformer-engine``): a bare
    ``No module named 'transformer_engine'`` names a module, not what to install.
    """
    return package.lower() in text.lower()


def first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def getattr_or_missing(obj: Any, name: str) -> Any:
    return getattr(obj, name, _MISSING)


# --------------------------------------------------------------------------- subprocess probe


def run_probe_subprocess(
    impl: str,
    calls: list[dict[str, Any]],
    *,
    hide: tuple[str, ...] = (),
    standin_dir: Path | None = None,
    report_imported: tuple[str, ...] = (),
    timeout: float = 180.0,
) -> dict[str, Any]:
    """Run contract ``calls`` against ``impl`` in a fresh interpreter with ``hide`` not importable.

    Each call is ``{"id": str, "fn": contract function name, "args": {attribute: value}}``. The
    child inherits this process's ``sys.path`` so that the implementation imports the same way.
    Returns ``{"results": [...], "imported": {...}}`` as written by :mod:`._probe`.
    """
    import json
    import subprocess

    from . import _probe

    key = json.dumps([impl, calls, hide, str(standin_dir), report_imported], sort_keys=True)
    if key in _PROBE_CACHE:
        return _PROBE_CACHE[key]
    spec = {
        "impl": impl,
        "hide": list(hide),
        "standin": str(standin_dir) if standin_dir else None,
        "calls": calls,
        "report": list(report_imported),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(fp8_env_prefixes())}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run(
        [sys.executable, "-m", _probe.__name__, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    payload = [line for line in proc.stdout.splitlines() if line.startswith(_probe.MARKER)]
    if proc.returncode != 0 or not payload:
        raise RuntimeError(f"probe subprocess for {impl!r} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(payload[-1][len(_probe.MARKER) :])
    _PROBE_CACHE[key] = result
    return result


_PROBE_CACHE: dict[str, dict[str, Any]] = {}

#: Calls made with torchao hidden and the stand-in TE present (C7 and C8b share one subprocess).
TE_BY_AUTO_CALLS: list[dict[str, Any]] = [
    {"id": "create-auto", "fn": "create_fp8_kwargs", "args": {"fp8": True, "fp8_backend": "auto"}},
    {"id": "configure-auto", "fn": "configure_fp8_environment", "args": {"fp8": True, "fp8_backend": "auto"}},
    {
        "id": "configure-auto-all-gather",
        "fn": "configure_fp8_environment",
        "args": {"fp8": True, "fp8_backend": "auto", "fp8_enable_fsdp_float8_all_gather": True},
    },
]
