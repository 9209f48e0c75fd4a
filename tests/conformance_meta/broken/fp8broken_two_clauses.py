"""Broken on purpose, in two clauses at once (for the known-failures meta-tests): ``get_fp8_mixed_precision``
always says ``"fp8"`` (breaks C1), and ``create_fp8_kwargs`` treats an unknown backend as ``auto`` instead of
raising ``ValueError`` (breaks C3). The rest is fp8ref's."""

from __future__ import annotations

import copy
from typing import Any

import fp8ref
from fp8ref import *  # noqa: F403  (everything this module does not break is fp8ref's)


def get_fp8_mixed_precision(training_args: Any) -> str | None:
    return "fp8"


def create_fp8_kwargs(training_args: Any) -> list[Any]:
    backend = str(getattr(training_args, "fp8_backend", "auto")).lower()
    if backend not in ("auto", "torchao", "te"):
        training_args = copy.copy(training_args)
        training_args.fp8_backend = "auto"
    return fp8ref.create_fp8_kwargs(training_args)
