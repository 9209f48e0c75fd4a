"""Exceptions of fp8ref. Each message says what to install or change."""

from __future__ import annotations


class FP8Error(Exception):
    """Base class of every error that fp8ref raises on purpose."""


class FP8ConfigError(FP8Error, ValueError):
    """The FP8 arguments are invalid or contradict each other."""


class FP8BackendUnavailableError(FP8Error, ImportError):
    """FP8 was requested but the backend that would run it cannot be imported."""


class FP8NotActiveError(FP8Error, RuntimeError):
    """FP8 was requested but is not in effect after ``accelerator.prepare`` (raised by ``strict=True``)."""
