"""Broken on purpose (breaks C13d): the Accelerator patch imports Transformer Engine whatever the
backend, so the torchao path fails where TE is not installed. Everything else is fp8ref's."""

from __future__ import annotations

from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)
from fp8ref import patch_accelerator_for_fp8 as _reference_patch


def patch_accelerator_for_fp8(training_args: Any = None) -> None:
    import transformer_engine.pytorch  # noqa: F401  (the seed's unconditional import)

    _reference_patch(training_args)


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c12 and not trainer or c13d", "fails": ("C13d",), "passes": ("C12a", "C12b")}
