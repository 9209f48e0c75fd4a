"""How the suite judges a call of ``verify_fp8_status`` (C12): did it warn, raise on purpose, or stay quiet?

The contract lets verify "log at WARNING or above, or raise" when FP8 is not in effect. Only a deliberate
error counts as that raise: one whose message says that FP8 is not in effect, so it names FP8 or float8 as a
word (``fp8_enabled`` in an ``AttributeError`` does not count), and which is not one of Python's
programming-error types. A verify that crashes is failed, not credited.

Where the block ran other libraries' code too (``prepare``, ``Trainer.train``), only the implementation's own records
count (:meth:`Outcome.own_warnings`): a warning is judged by its level and by who emitted it, never by its wording.
The follow-up of C12d may say "no layer converted; training runs in bf16" without naming FP8; and what transformers,
accelerate, torchao or DeepSpeed log meanwhile never decides a verdict, whatever words it uses.

**Quiet** (C12b, C12d, C14, C16a, C17a) means no exception and no WARNING+ record, except the notice of C12e where
the FP8 layers run eagerly: one WARNING+ record of the implementation that names ``torch.compile``. Where the model
runs compiled (C12b is judged on a lazily compiled model) nothing at all may be logged at WARNING or above. A
**loud** verdict (C12a, C12c, C12d) needs a WARNING+ record other than that notice, or a deliberate FP8 error: the
notice says that FP8 is in effect and slow, not that it is off.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .logs import LogCapture, capture_logs, is_third_party
from .messages import mentions_word

#: What the C12e notice names.
COMPILE_NOTICE_TEXT = "torch.compile"

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


def is_library_record(record: logging.LogRecord) -> bool:
    """Whether ``record`` comes from a library the suite drives (torch's own warnings name ``torch.compile`` too)."""
    return is_third_party(record)


def is_compile_notice(record: logging.LogRecord) -> bool:
    """The notice of C12e: a WARNING+ record, not a library's, whose message names ``torch.compile``."""
    return (
        record.levelno >= logging.WARNING
        and not is_library_record(record)
        and COMPILE_NOTICE_TEXT in record.getMessage()
    )


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
        """Warned (a record that ``records`` selects, any WARNING+ record by default, other than the C12e notice),
        or raised a deliberate FP8 error."""
        found = records(self) if records is not None else self.logs.at_least(logging.WARNING)
        warned = any(not is_compile_notice(r) for r in found)
        return warned or (self.error is not None and is_deliberate_fp8_error(self.error))

    def own_warnings(self) -> list[logging.LogRecord]:
        """WARNING+ records that the implementation emitted, whatever they say; those of the libraries the suite
        drives are left out (see :func:`.logs.is_third_party`)."""
        return self.logs.own(logging.WARNING)

    #: The earlier name of :meth:`own_warnings` (it once kept only records that named FP8).
    fp8_warnings = own_warnings

    def compile_notices(self) -> list[logging.LogRecord]:
        """The C12e notices among the WARNING+ records."""
        return [r for r in self.logs.at_least(logging.WARNING) if is_compile_notice(r)]

    def explain_error(self) -> str:
        if self.error is None:
            return "no exception"
        kind = "a deliberate FP8 error" if is_deliberate_fp8_error(self.error) else "NOT a deliberate FP8 error"
        name = getattr(self.error, "type_name", type(self.error).__name__)
        return f"{name}: {self.error} ({kind})"


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


def assert_quiet(
    outcome: Outcome,
    situation: str,
    records: Callable[[Outcome], list[Any]] | None = None,
    *,
    compiled: bool = False,
) -> None:
    """C12b/d, C14, C16a, C17a: no exception and no WARNING+ record (``records`` narrows which records count), except
    one C12e notice, which the layers running eagerly allow; with ``compiled`` (the model runs under
    ``torch.compile``) not even that."""
    assert outcome.error is None, f"verify_fp8_status raised although {situation}: {outcome.explain_error()}"
    found = records(outcome) if records is not None else outcome.logs.at_least(logging.WARNING)
    if compiled:
        assert not found, (
            f"verify_fp8_status warned although {situation} and the model runs compiled (nothing may be logged at "
            f"WARNING or above, not even the C12e notice): {outcome.described}"
        )
        return
    others = [r for r in found if not is_compile_notice(r)]
    assert not others, f"verify_fp8_status warned although {situation}: {outcome.described}"
    notices = [r for r in found if is_compile_notice(r)]
    assert len(notices) <= 1, (
        f"verify_fp8_status logged the C12e notice {len(notices)} times although {situation} (one message): "
        f"{outcome.described}"
    )


def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """An :class:`Outcome` as JSON data (its WARNING+ records and its exception), for a child process's result."""
    error = outcome.error
    return {
        "records": [
            {"levelno": r.levelno, "name": r.name, "message": r.getMessage()}
            for r in outcome.logs.at_least(logging.WARNING)
        ],
        "error": None if error is None else {"type": type(error).__name__, "message": str(error)},
    }


class ErrorInChild(Exception):
    """An exception raised in a child process, by the name of its class (not one of Python's built-in ones)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


def outcome_from_dict(data: dict[str, Any]) -> Outcome:
    """The :class:`Outcome` that :func:`outcome_to_dict` wrote (a built-in exception class is rebuilt as itself)."""
    records = [
        logging.makeLogRecord(
            {
                "levelno": r["levelno"],
                "levelname": logging.getLevelName(r["levelno"]),
                "name": r["name"],
                "msg": r["message"],
            }
        )
        for r in data.get("records", [])
    ]
    outcome = Outcome(logs=LogCapture(records=records))
    error = data.get("error")
    if error is not None:
        builtin = getattr(builtins, error["type"], None)
        if isinstance(builtin, type) and issubclass(builtin, Exception):
            outcome.error = builtin(error["message"])
        else:
            outcome.error = ErrorInChild(error["type"], error["message"])
    return outcome


def assert_one_compile_notice(outcome: Outcome, situation: str) -> None:
    """C12e where torchao float8 layers are in effect and run eagerly: one WARNING+ record of the implementation
    that names ``torch.compile``, nothing else of its own, and no exception."""
    assert outcome.error is None, (
        f"verify_fp8_status raised although {situation}: the C12e notice is a warning, never an error "
        f"({outcome.explain_error()})"
    )
    notices = outcome.compile_notices()
    assert len(notices) == 1, (
        f"verify_fp8_status logged {len(notices)} WARNING+ messages naming torch.compile although {situation} "
        f"(C12e: one, saying how to turn torch.compile on); WARNING+ records: {outcome.described}"
    )
    others = [
        r for r in outcome.logs.at_least(logging.WARNING) if not is_compile_notice(r) and not is_library_record(r)
    ]
    assert not others, (
        f"verify_fp8_status warned about more than torch.compile although {situation}: {outcome.described}"
    )


def assert_no_compile_notice(outcome: Outcome, situation: str) -> None:
    """C12e where the float8 layers run compiled (or are TE layers): no message naming ``torch.compile``."""
    notices = outcome.compile_notices()
    raised = outcome.error is not None and COMPILE_NOTICE_TEXT in str(outcome.error)
    assert not notices and not raised, (
        f"verify_fp8_status said torch.compile is off although {situation}: {outcome.described}; "
        f"exception: {outcome.explain_error()}"
    )
