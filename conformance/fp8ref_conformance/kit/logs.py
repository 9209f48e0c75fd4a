"""Log capture: every record any logger emits during a block, whatever its handlers or ``propagate``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field


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
