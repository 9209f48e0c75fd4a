"""How the suite judges a call of ``verify_fp8_status`` (C12): did it warn, raise on purpose, or stay quiet?

The contract lets verify "log at WARNING or above, or raise" when FP8 is not in effect. Only a deliberate
error counts as that raise: one whose message says that FP8 is not in effect, so it names FP8 or float8 as a
word (``fp8_enabled`` in an ``AttributeError`` does not count), and which is not one of Python's
programming-error types. A verify that crashes is failed, not credited.

Where the block ran other libraries' code too (``prepare``, ``Trainer.train``), only the implementation's own records
count (:meth:`Outcome.own_warnings`): a warning is judged by its level and by who emitted it, never by its wording.
The follow-up of C12d may say "no layer converted; training runs in bf16" without naming FP8; and what transformers,
accelerate, torchao or DeepSpeed log meanwhile never decides a verdict, whatever words it uses.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .logs import LogCapture, capture_logs
from .messages import mentions_word

#: Exceptions that say the code is broken, not that FP8 is off.
PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    AttributeError,
    TypeError,
    NameError,
    KeyError,
    IndexError,
    AssertionError,
    RecursionError,
)


def is_deliberate_fp8_error(error: BaseException) -> bool:
    """Whether ``error`` is a deliberate "FP8 is not in effect" error (see the module docstring)."""
    if isinstance(error, PROGRAMMING_ERRORS):
        return False
    text = str(error)
    return mentions_word(text, "FP8") or mentions_word(text, "float8")


@dataclass
class Outcome:
    """What a block that may call verify did: its exception (if any) and its WARNING+ log records."""

    error: BaseException | None = None
    logs: LogCapture = field(default_factory=LogCapture)

    @property
    def warned(self) -> bool:
        return bool(self.logs.at_least(logging.WARNING))

    @property
    def described(self) -> str:
        return self.logs.describe(logging.WARNING)

    def loud(self, records: Callable[[Outcome], list[Any]] | None = None) -> bool:
        """Warned (a record that ``records`` selects; any WARNING+ record by default), or raised a
        deliberate FP8 error."""
        warned = bool(records(self)) if records is not None else self.warned
        return warned or (self.error is not None and is_deliberate_fp8_error(self.error))

    def own_warnings(self) -> list[logging.LogRecord]:
        """WARNING+ records that the implementation emitted, whatever they say; those of the libraries the suite
        drives are left out (see :func:`.logs.is_third_party`)."""
        return self.logs.own(logging.WARNING)

    #: The earlier name of :meth:`own_warnings` (it once kept only records that named FP8).
    fp8_warnings = own_warnings

    def explain_error(self) -> str:
        if self.error is None:
            return "no exception"
        kind = "a deliberate FP8 error" if is_deliberate_fp8_error(self.error) else "NOT a deliberate FP8 error"
        return f"{type(self.error).__name__}: {self.error} ({kind})"


@contextlib.contextmanager
def observe() -> Iterator[Outcome]:
    """Capture the log records of the block and the exception it raises (kept, not propagated)."""
    outcome = Outcome()
    with capture_logs() as logs:
        outcome.logs = logs
        try:
            yield outcome
        except Exception as exc:  # judged by the caller: deliberate FP8 error, or a crash
            outcome.error = exc


def call_verify(impl: Any, acc: Any, args: Any) -> Outcome:
    with observe() as outcome:
        impl.verify_fp8_status(acc, args)
    return outcome


def assert_loud(outcome: Outcome, situation: str, records: Callable[[Outcome], list[Any]] | None = None) -> None:
    """C12a/c/d: a WARNING+ record (one that ``records`` selects, when given), or a deliberate FP8 error.

    Where the block ran other libraries' code too (``prepare``, ``Trainer.train``), pass
    ``records=Outcome.own_warnings`` so that another library's warning is not taken for verify's."""
    assert outcome.loud(records), (
        f"verify_fp8_status neither warned nor raised a deliberate FP8 error although {situation}; "
        f"WARNING+ records: {outcome.described}; exception: {outcome.explain_error()}"
    )


def assert_quiet(outcome: Outcome, situation: str, records: Callable[[Outcome], list[Any]] | None = None) -> None:
    """C12b/d: no exception and no WARNING+ record (``records`` narrows which records count)."""
    assert outcome.error is None, f"verify_fp8_status raised although {situation}: {outcome.explain_error()}"
    found = records(outcome) if records is not None else outcome.logs.at_least(logging.WARNING)
    assert not found, f"verify_fp8_status warned although {situation}: {outcome.described}"
