"""What this machine can run (a package, CUDA FP8 kernels, the real Transformer Engine), each as the reason a test
skips when it cannot."""

from __future__ import annotations

import importlib.util

from .packages import importable

#: The lowest CUDA compute capability with FP8 tensor cores (Ada, Hopper).
MIN_FP8_COMPUTE_CAPABILITY = (8, 9)


def cuda_fp8_skip_reason() -> str | None:
    """Why CUDA FP8 kernels cannot run here (no CUDA device, or one without FP8 tensor cores), else ``None``."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device: FP8 kernels need a GPU of compute capability >= 8.9"
    capability = torch.cuda.get_device_capability()
    if capability < MIN_FP8_COMPUTE_CAPABILITY:
        name = torch.cuda.get_device_name()
        return f"CUDA device {name} has compute capability {capability[0]}.{capability[1]} < 8.9: no FP8 tensor cores"
    return None


def torchao_skip_reason() -> str | None:
    return None if importable("torchao.float8") else "torchao is not importable (pip install torchao)"


def real_te_skip_reason() -> str | None:
    """Why the real Transformer Engine cannot be used here, or ``None``."""
    from .standin_te import is_standin_te

    try:
        import transformer_engine
        import transformer_engine.pytorch as te
    except ImportError as exc:
        return f"the real Transformer Engine is not importable ({exc}): pip install transformer-engine[pytorch]"
    if is_standin_te(transformer_engine) or is_standin_te(te):
        return "only the conformance suite's stand-in transformer_engine is importable; it has no kernels"
    return None


def package_skip_reason(package: str) -> str | None:
    """Why an optional package of the test extra (``deepspeed``, ``peft``) cannot be used here, or ``None``."""
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed: pip install {package} (it is in fp8ref's test extra)"
    return None
