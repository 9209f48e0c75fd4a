"""Broken on purpose (breaks C12a): verify reports FP8 not in effect at INFO only, with "WARNING" in the
text but not in the level, so nobody sees it. The other four functions are fp8ref's."""

from __future__ import annotations

import logging
from typing import Any

from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)


def verify_fp8_status(accelerator: Any, training_args: Any) -> None:
    if not getattr(training_args, "fp8", False):
        return
    if not getattr(accelerator, "fp8_enabled", False):
        logging.getLogger(__name__).info("WARNING: FP8 was requested but fp8_enabled=False. FP8 may not be working.")


#: What the suite must say of this module (tests/conformance_meta/expectations.py).
EXPECTED = {"select": "c2 or c12 and not trainer", "fails": ("C12a",), "passes": ("C12b", "C2")}
