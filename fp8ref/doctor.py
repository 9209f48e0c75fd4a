"""``fp8ref doctor``: what is installed, what GPU is here, and whether each FP8 backend would work."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from fp8ref.backends import INSTALL_HINT, installed_version, probe_backend
from fp8ref.config import Backend

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
class DoctorReport:
    python: str
    versions: dict[str, str | None]
    cuda_device: str | None
    compute_capability: tuple[int, int] | None
    backends: tuple[BackendVerdict, ...] = field(default=())

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
            "any_backend_usable": self.any_usable,
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
    )
