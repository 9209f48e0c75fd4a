"""Log capture: every record any logger emits during a block, whatever its handlers or ``propagate``; and whose
record it is (the implementation's, or one of the libraries the suite drives)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field

#: The libraries the suite drives, and the suite itself: their records never decide a verdict (an implementation
#: is judged by what it logs, not by what transformers, accelerate, torchao or DeepSpeed say meanwhile).
THIRD_PARTY_PACKAGES = (
    "transformers",
    "accelerate",
    "torchao",
    "deepspeed",
    "torch",
    "peft",
    "huggingface_hub",
    "safetensors",
    "tokenizers",
    "datasets",
    "hypothesis",
    "_pytest",
    "pytest",
    __name__.split(".", 1)[0],
)
#: ``logging.captureWarnings`` logs a ``warnings.warn`` as ``"<file>:<line>: <Category>: <text>"`` on ``py.warnings``.
_CAPTURED_WARNING = re.compile(r"^(?P<file>.+?):\d+: \w+: ")


@dataclass
class LogCapture:
    """Log records emitted while a :func:`capture_logs` block ran."""

    records: list[logging.LogRecord] = field(default_factory=list)

    def at_least(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level]

    def own(self, level: int) -> list[logging.LogRecord]:
        """Records at ``level`` or above that no third-party library emitted (see :func:`is_third_party`)."""
        return [r for r in self.at_least(level) if not is_third_party(r)]

    def describe(self, level: int = logging.WARNING) -> str:
        lines = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.at_least(level)]
        return "; ".join(lines) if lines else "(none)"


@functools.cache
def _package_dirs() -> tuple[str, ...]:
    """The directories of :data:`THIRD_PARTY_PACKAGES` that are installed here."""
    dirs: set[str] = set()
    for name in THIRD_PARTY_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            dirs.update(os.path.realpath(location) for location in spec.submodule_search_locations or [])
    return tuple(sorted(dirs))


@functools.cache
def _stdlib_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The standard library's directories, and the site directories that may sit inside them."""
    paths = sysconfig.get_paths()
    stdlib = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib")}
    sites = {os.path.realpath(paths[key]) for key in ("purelib", "platlib")}
    return tuple(sorted(stdlib)), tuple(sorted(sites))


def _inside(path: str, directories: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(real == d or real.startswith(d + os.sep) for d in directories)


def emitting_file(record: logging.LogRecord) -> str:
    """The file whose code emitted ``record``: for a captured ``warnings.warn``, the file that warned."""
    if record.name == "py.warnings":
        match = _CAPTURED_WARNING.match(record.getMessage())
        if match:
            return match.group("file")
    return record.pathname


def is_third_party(record: logging.LogRecord) -> bool:
    """Whether ``record`` comes from a library the suite drives (or the suite itself, or the standard library):
    its logger is in one of :data:`THIRD_PARTY_PACKAGES`, or the code that emitted it lives in one.

    Everything else is the implementation's own: its module and whatever it delegates to (a package it wraps,
    a logging helper of its project), whatever the logger is called and whatever the message says."""
    if record.name.split(".", 1)[0] in THIRD_PARTY_PACKAGES:
        return True
    path = emitting_file(record)
    if _inside(path, _package_dirs()):
        return True
    stdlib, sites = _stdlib_dirs()
    return _inside(path, stdlib) and not _inside(path, sites)


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
