"""Verdicts other than pass and fail: a test that cannot make its own check because another clause's behaviour is
broken reports its clause **blocked** by that clause, with the reason (contract, "Verdicts: failed, blocked,
missing").

A block is data, as ``missing`` is: :class:`Blocked` carries the blocking clause and the reason, the plugin
copies them into the test report's ``user_properties`` (they survive pytest-xdist), and the clause table says
``blocked by C6``. A blocked clause does not pass, and the run does not conform while anything is blocked.

The rule that keeps a block from hiding a failure: a test blocks only on what it has **observed** of another
clause's subject, judged by that clause's own text: a value the other clause forbids (a config that is not
tensorwise with the all-gather flag: C6), or the very failure the other clause names (``transformer_engine``
imported by the patch on the torchao path: C13d). Any other exception the implementation raises where the
clause under test allows none is a failure of the clause under test, never a block. So a precondition is
checked with :func:`block_unless` on a value, never by catching an implementation's exception, except through
:func:`apply_patch`, which knows C13d's exact failure.

API (for clause tests and the children):

- ``block(clause, reason)``: raise :class:`Blocked` (never returns);
- ``block_unless(condition, clause, reason)``: the precondition form of ``assert``;
- ``apply_patch(impl, backend)``: ``impl.patch_accelerator_for_fp8()``; on the torchao path an ``ImportError``
  of ``transformer_engine`` is C13d's defect and blocks the caller's clause; anything else propagates;
- ``Blocked.to_dict()`` / ``Blocked.from_dict(data)`` / ``reraise_recorded(data)``: a block observed in a child
  process travels in its JSON result and is raised again by the test that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from _pytest.outcomes import Failed

#: The key under which a test report's ``user_properties`` carry ``{"clause": ..., "reason": ...}``.
BLOCKED_PROPERTY = "fp8_blocked_by"

#: Backends on which the patch must not need Transformer Engine (C13d).
TORCHAO_PATH = ("torchao", "auto")


class Blocked(Failed):
    """The test cannot judge its clause because ``clause`` (another clause) is broken, as ``reason`` says.

    A pytest outcome (``BaseException``), so that no ``except Exception`` in the suite's support code or in an
    implementation turns it into an ordinary error."""

    def __init__(self, clause: str, reason: str) -> None:
        super().__init__(msg=f"blocked by {clause}: {reason}", pytrace=False)
        self.clause = clause
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {"clause": self.clause, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Blocked:
        return cls(str(data["clause"]), str(data["reason"]))


def block(clause: str, reason: str) -> NoReturn:
    """Report the running test's clause as blocked by ``clause``."""
    raise Blocked(clause, reason)


def block_unless(condition: object, clause: str, reason: str) -> None:
    """Block on ``clause`` unless ``condition`` holds (a precondition that is another clause's text)."""
    if not condition:
        block(clause, reason)


def reraise_recorded(data: Mapping[str, Any]) -> None:
    """Raise the block a child recorded under ``"blocked"`` in ``data``, if any."""
    recorded = data.get("blocked")
    if recorded:
        raise Blocked.from_dict(recorded)


def is_te_import_error(error: BaseException) -> bool:
    """An ``ImportError`` of the ``transformer_engine`` package (or one of its modules)."""
    if not isinstance(error, ImportError):
        return False
    name = getattr(error, "name", None) or ""
    return name.split(".", 1)[0] == "transformer_engine" or "transformer_engine" in str(error)


def apply_patch(impl: Any, backend: str) -> None:
    """``impl.patch_accelerator_for_fp8()`` where a clause other than C13 needs the patch in place.

    With ``backend`` on the torchao path, the patch raising an ``ImportError`` of ``transformer_engine`` is
    exactly what C13d forbids ("with torchao resolved it does not import transformer_engine, and works where TE
    is not installed"): the caller's clause is blocked by C13d. Any other exception propagates and fails the
    caller's clause."""
    try:
        impl.patch_accelerator_for_fp8()
    except ImportError as exc:
        if str(backend).lower() in TORCHAO_PATH and is_te_import_error(exc):
            block("C13d", f"patch_accelerator_for_fp8() on the torchao path raised {type(exc).__name__}: {exc}")
        raise
