"""Programs the suite runs in child processes, each started as ``python -m fp8ref_conformance.children.NAME``
(or under ``torch.distributed.run -m``) by :mod:`..kit.processes`:

- ``probe``: contract calls in a fresh interpreter where some packages are hidden (C4, C7, C8b);
- ``fsdp_float8``: FSDP2 with float8 all-gather on two CPU ranks (C15);
- ``deepspeed_trainer``: the HF ``Trainer`` under DeepSpeed ZeRO (C16).

The two training children share how a rank reports: :func:`run_rank` writes its JSON result (read back by
:func:`..kit.processes.read_rank_files`), and :func:`exit_without_teardown` ends the process once it is written.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn


def run_rank(work: Callable[[], dict[str, Any]], payload: dict[str, Any], out: Path) -> int:
    """Run ``work`` for this rank and write ``payload``, updated with its result, to ``out`` as JSON; when ``work``
    raises, with ``error`` and ``traceback`` instead (the test judges either). Then, where a process group is up,
    wait for the other ranks (after a success) and take the group down. Returns 0, or 1 when ``work`` raised."""
    status = 0
    try:
        payload.update(work())
    except Exception as exc:  # reported to the test through the JSON file
        payload["error"] = f"{type(exc).__name__}: {exc}"
        payload["traceback"] = traceback.format_exc()[-6000:]
        status = 1
    out.write_text(json.dumps(payload, indent=2))
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if status == 0:
            dist.barrier()
        dist.destroy_process_group()
    return status


def exit_without_teardown(code: int) -> NoReturn:
    """Leave with ``code`` once the result is written, flushing the output but skipping the interpreter's teardown
    (the C++ globals of torch and DeepSpeed, whose destruction can abort a run that succeeded)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
