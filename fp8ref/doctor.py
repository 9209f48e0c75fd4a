"""``fp8ref doctor``: what is installed, what GPU is here, whether each FP8 backend would work, known
incompatibilities between the packages installed (PEFT's LoRA and torchao), and the known upstream FP8 defects
(``fp8ref/data/upstream_defects.json``) that apply to the installed versions."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fp8ref.backends import INSTALL_HINT, installed_version, probe_backend
from fp8ref.config import Backend
from fp8ref.upstream_defects import UpstreamDefect, applicable_defects

FP8_MIN_CAPABILITY = (8, 9)  # Ada (sm_89) and Hopper (sm_90) have float8 tensor cores


@dataclass(frozen=True)
class BackendVerdict:
    backend: str
    package: str
    installed_version: str | None
    usable: bool
    detail: str
    fix: str | None


@dataclass(frozen=True)
class CompatibilityVerdict:
    """Whether two installed packages work together for FP8 training (``name`` says which, with versions)."""

    name: str
    compatible: bool
    detail: str
    fix: str | None


@dataclass(frozen=True)
class DoctorReport:
    python: str
    versions: dict[str, str | None]
    cuda_device: str | None
    compute_capability: tuple[int, int] | None
    backends: tuple[BackendVerdict, ...] = field(default=())
    compatibility: tuple[CompatibilityVerdict, ...] = field(default=())
    defects: tuple[UpstreamDefect, ...] = field(default=())

    @property
    def any_usable(self) -> bool:
        return any(verdict.usable for verdict in self.backends)

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "versions": self.versions,
            "cuda_device": self.cuda_device,
            "compute_capability": list(self.compute_capability) if self.compute_capability else None,
            "backends": [verdict.__dict__ for verdict in self.backends],
            "compatibility": [verdict.__dict__ for verdict in self.compatibility],
            "any_backend_usable": self.any_usable,
            "upstream_defects": [defect.to_dict() for defect in self.defects],
        }

    def render(self) -> str:
        lines = [f"python             {self.python}"]
        lines += [f"{name:<18} {version or 'not installed'}" for name, version in self.versions.items()]
        if self.cuda_device:
            major, minor = self.compute_capability or (0, 0)
            lines.append(f"cuda device        {self.cuda_device} (compute capability {major}.{minor})")
        else:
            lines.append("cuda device        none (CPU only)")
        lines.append("")
        for verdict in self.backends:
            state = "OK " if verdict.usable else "NO "
            lines.append(f"[{state}] {verdict.backend}: {verdict.detail}")
            if verdict.fix:
                lines.append(f"      fix: {verdict.fix}")
        for check in self.compatibility:
            lines.append(f"[{'OK ' if check.compatible else 'NO '}] {check.name}: {check.detail}")
            if check.fix:
                lines.append(f"      fix: {check.fix}")
        lines += ["", f"known upstream FP8 defects that apply here: {len(self.defects) or 'none'}"]
        for defect in self.defects:
            handled = "fp8ref works around it" if defect.fp8ref_works_around else "fp8ref does not work around it"
            lines.append(f"[!! ] {defect.id} ({defect.ranges()}; {handled}): {defect.title}")
            lines.append(f"      fix: {defect.fix}")
        if not self.any_usable:
            lines += [
                "",
                "Neither FP8 backend is usable here. Install one: "
                f"{INSTALL_HINT[Backend.TORCHAO]} (CPU and GPU), or {INSTALL_HINT[Backend.TE]}.",
            ]
        return "\n".join(lines)


def _cuda() -> tuple[str | None, tuple[int, int] | None]:
    import torch

    if not torch.cuda.is_available():
        return None, None
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), (major, minor)


def _torchao_verdict(capability: tuple[int, int] | None) -> BackendVerdict:
    probe = probe_backend(Backend.TORCHAO)
    if not probe.available:
        return BackendVerdict(
            "torchao", "torchao", probe.version, False, probe.reason or "", INSTALL_HINT[Backend.TORCHAO]
        )
    emulation = _torchao_emulation()
    if emulation is not None:
        return BackendVerdict("torchao", "torchao", probe.version, False, emulation, "build it with emulate=False")
    if capability is None:
        detail = (
            "importable; no CUDA device, so float8 runs on the CPU with reference kernels: correct but far "
            "slower than bf16 (for tests, not for training)"
        )
    elif capability < FP8_MIN_CAPABILITY:
        return BackendVerdict(
            "torchao",
            "torchao",
            probe.version,
            False,
            f"importable, but the GPU has compute capability {capability[0]}.{capability[1]}: float8 GEMMs need 8.9+",
            "use an Ada (L4, L40S, RTX 4090) or Hopper (H100, H200) GPU",
        )
    else:
        detail = f"importable; GPU compute capability {capability[0]}.{capability[1]} has float8 tensor cores"
    return BackendVerdict("torchao", "torchao", probe.version, True, detail, None)


def _torchao_emulation() -> str | None:
    """Why fp8ref's torchao config would not put FP8 in effect, judged as verify judges layers: a config
    that emulates float8 runs high-precision matmuls (None when no recipe emulates)."""
    from fp8ref.config import FP8Settings
    from fp8ref.recipes import build_torchao_config
    from fp8ref.verify import config_emulates

    for all_gather in (False, True):
        settings = FP8Settings(enabled=True, backend=Backend.TORCHAO, enable_fsdp_float8_all_gather=all_gather)
        if config_emulates(build_torchao_config(settings)):
            return (
                f"the torchao config fp8ref builds ({settings.effective_recipe.value}) emulates float8: its "
                "layers would run high-precision matmuls, which verify_fp8_status reports as FP8 not in effect"
            )
    return None


def _te_verdict(capability: tuple[int, int] | None) -> BackendVerdict:
    probe = probe_backend(Backend.TE)
    if not probe.available:
        return BackendVerdict(
            "te", "transformer-engine", probe.version, False, probe.reason or "", INSTALL_HINT[Backend.TE]
        )
    if capability is None or capability < FP8_MIN_CAPABILITY:
        return BackendVerdict(
            "te",
            "transformer-engine",
            probe.version,
            False,
            "importable, but Transformer Engine FP8 needs a CUDA GPU of compute capability 8.9+",
            "run on an Ada or Hopper GPU",
        )
    return BackendVerdict("te", "transformer-engine", probe.version, True, "importable; GPU supports FP8", None)


#: The function of PEFT's LoRA that runs for every target layer whenever torchao is installed (``peft.tuners.lora``).
_PEFT_TORCHAO_DISPATCH = ("tuners/lora/torchao.py", "dispatch_torchao")


def _torchao_imports_of(source: Path, function: str) -> list[tuple[str, str]] | None:
    """``(module, name)`` for each ``from torchao... import name`` inside ``function`` of ``source``; ``None`` when the
    file or the function is not there."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return [
                (statement.module, alias.name)
                for statement in ast.walk(node)
                if isinstance(statement, ast.ImportFrom) and (statement.module or "").split(".")[0] == "torchao"
                for alias in statement.names
                if statement.module is not None
            ]
    return None


def lora_torchao_verdict() -> CompatibilityVerdict | None:
    """PEFT's LoRA against the installed torchao, or ``None`` when either is missing or PEFT's layout is unknown.

    When torchao is installed, PEFT's LoRA runs ``dispatch_torchao`` for every layer it wraps, and that imports torchao
    names; a name the installed torchao lacks makes ``get_peft_model`` fail with ``ImportError`` (LLaMA-Factory's
    ``finetuning_type: lora``): PEFT 0.18.1, LLaMA-Factory 0.9.5's pin, imports ``LinearActivationQuantizedTensor``
    from ``torchao.quantization``, which torchao 0.18 removed. Judged by reading PEFT's source (without importing
    PEFT, which imports transformers) and importing the torchao modules it names.
    """
    peft_version, torchao_version = installed_version("peft"), installed_version("torchao")
    spec = importlib.util.find_spec("peft") if peft_version and torchao_version else None
    if spec is None or not spec.submodule_search_locations:
        return None
    relative, function = _PEFT_TORCHAO_DISPATCH
    imports = _torchao_imports_of(Path(next(iter(spec.submodule_search_locations))) / relative, function)
    if imports is None:
        return None
    missing = []
    for module_name, name in imports:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(f"{module_name} (the module)")
            continue
        if not hasattr(module, name):
            missing.append(f"{name} from {module_name}")
    title = f"LoRA (peft {peft_version}, torchao {torchao_version})"
    if not missing:
        return CompatibilityVerdict(title, True, "peft's LoRA finds the torchao names it imports", None)
    return CompatibilityVerdict(
        title,
        False,
        f"peft's LoRA ({function}, run for every layer it wraps while torchao is installed) imports "
        f"{', '.join(missing)}, which torchao {torchao_version} does not have: get_peft_model fails with ImportError "
        "(in LLaMA-Factory: finetuning_type: lora)",
        "install a torchao that has it (torchao 0.17.0 has LinearActivationQuantizedTensor and trains float8 with "
        "torch 2.13), or a peft that does not import it (peft 0.21.2 works with torchao 0.18.0); "
        "LLaMA-Factory 0.9.5 pins peft<=0.18.1",
    )


def run_doctor() -> DoctorReport:
    device, capability = _cuda()
    versions = {
        name: installed_version(dist)
        for name, dist in (
            ("torch", "torch"),
            ("accelerate", "accelerate"),
            ("transformers", "transformers"),
            ("torchao", "torchao"),
            ("transformer-engine", "transformer-engine"),
            ("deepspeed", "deepspeed"),
            ("peft", "peft"),
        )
    }
    return DoctorReport(
        python=platform.python_version(),
        versions=versions,
        cuda_device=device,
        compute_capability=capability,
        backends=(_torchao_verdict(capability), _te_verdict(capability)),
        compatibility=tuple(verdict for verdict in (lora_torchao_verdict(),) if verdict is not None),
        defects=applicable_defects(),
    )
