"""The judgements behind the clauses of the real client, LLaMA-Factory's trainer, without a child suite: quiet and
loud with the C12e notice, verify's outcome as the DeepSpeed child writes it, C16c's raise sites
(``create_fp8_kwargs`` with the run's own arguments) and its message in any wording, and how the training runs ask
a partial module what it offers.

The broken and partial implementations of these clauses (C8g, C12e, C14b, C16d, and partial modules in C16 and
C17) each declare their verdicts (``EXPECTED``), judged by ``test_broken_implementations.py``.
"""

from __future__ import annotations

import json
import logging
import types
from typing import Any

import pytest

from fp8ref_conformance.children.deepspeed_trainer import refusal
from fp8ref_conformance.kit.logs import LogCapture
from fp8ref_conformance.kit.messages import names_all_gather_and_deepspeed
from fp8ref_conformance.kit.trainer import offers
from fp8ref_conformance.kit.verify_outcome import Outcome, assert_quiet, outcome_from_dict, outcome_to_dict

# --------------------------------------------------------------------------- the judgements, without a child


def _record(message: str, name: str = "myimpl.verify", level: int = logging.WARNING) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"levelno": level, "levelname": logging.getLevelName(level), "name": name, "msg": message}
    )


NOTICE = "FP8 is in effect but runs eagerly: turn torch.compile on (torch_compile=True)"


def test_quiet_allows_one_compile_notice_and_nothing_else() -> None:
    """Quiet (C12b, C12d, C14, C16a, C17a): one C12e notice where the layers run eagerly; none where they run
    compiled (C12b); a library's record naming ``torch.compile`` is not the implementation's notice."""
    notice = Outcome(logs=LogCapture([_record(NOTICE)]))
    assert_quiet(notice, "eager")
    with pytest.raises(AssertionError, match="runs compiled"):
        assert_quiet(notice, "compiled", compiled=True)
    with pytest.raises(AssertionError, match="2 times"):
        assert_quiet(Outcome(logs=LogCapture([_record(NOTICE), _record(NOTICE)])), "eager")
    with pytest.raises(AssertionError, match="warned"):
        assert_quiet(Outcome(logs=LogCapture([_record(NOTICE), _record("FP8 is not in effect")])), "eager")
    torch_record = _record("<enum 'X'> is natively supported by torch.compile", name="torch.utils._pytree")
    assert not Outcome(logs=LogCapture([torch_record])).compile_notices()


def test_loud_needs_more_than_the_compile_notice() -> None:
    """C12a/c/d: the notice says FP8 is in effect and slow; it does not say FP8 is off."""
    assert not Outcome(logs=LogCapture([_record(NOTICE)])).loud()
    assert Outcome(logs=LogCapture([_record(NOTICE), _record("no layer converted: training runs in bf16")])).loud()


def test_an_outcome_survives_the_child_process() -> None:
    """What the DeepSpeed child writes as JSON judges as the outcome it was: records and a deliberate error."""
    outcome = Outcome(logs=LogCapture([_record(NOTICE), _record("info", level=logging.INFO)]))
    outcome.error = RuntimeError("FP8 is not in effect")
    again = outcome_from_dict(json.loads(json.dumps(outcome_to_dict(outcome))))
    assert [r.getMessage() for r in again.compile_notices()] == [NOTICE]
    assert isinstance(again.error, RuntimeError) and again.loud()
    crashed = outcome_from_dict({"records": [], "error": {"type": "FP8SomethingError", "message": "FP8 is off"}})
    assert crashed.loud() and "FP8SomethingError" in crashed.explain_error()


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ("fp8_enable_fsdp_float8_all_gather=True cannot be used with DeepSpeed", True),
        ("ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER=true cannot be combined with a deepspeed_config", True),
        ("enable_fsdp_float8_all_gather is FSDP2-only; DeepSpeedPlugin found", True),
        ("the float8 all-gather does not work with DeepSpeed", False),  # names no flag
        ("fp8_enable_fsdp_float8_all_gather is for FSDP2 only", False),  # names no DeepSpeed
    ],
)
def test_c16c_message_names_the_flag_and_deepspeed_in_any_wording(message: str, names: bool) -> None:
    assert names_all_gather_and_deepspeed(message) is names


def test_c16c_raise_site_create_fp8_kwargs_with_the_runs_own_arguments() -> None:
    """The DeepSpeed child passes the run's arguments through every place C16c allows, ``create_fp8_kwargs`` too;
    a module that refuses only there is seen refusing there (and never reaches the Trainer)."""
    args = types.SimpleNamespace(
        fp8=True, fp8_backend="torchao", fp8_enable_fsdp_float8_all_gather=True, deepspeed="ds_zero3.json"
    )
    calls: list[str] = []

    def create_fp8_kwargs(training_args: Any) -> list[Any]:
        calls.append("create")
        assert training_args is args, "create_fp8_kwargs got other arguments than the run's"
        raise ValueError("enable_fsdp_float8_all_gather: not with deepspeed")

    impl = types.ModuleType("refuses_in_create")
    impl.configure_fp8_environment = lambda training_args: calls.append("configure")  # type: ignore[attr-defined]
    impl.create_fp8_kwargs = create_fp8_kwargs  # type: ignore[attr-defined]
    impl.patch_accelerator_for_fp8 = lambda: calls.append("patch")  # type: ignore[attr-defined]

    def build_trainer() -> Any:
        raise AssertionError("the Trainer was built although create_fp8_kwargs refused")

    record = refusal(impl, args, build_trainer)
    assert calls == ["configure", "create"]
    assert record["raised"] and record["phase"] == "create_fp8_kwargs" and record["is_value_error"], record
    del impl.create_fp8_kwargs  # a module without create_fp8_kwargs goes on to the patch
    assert refusal(impl, args, build_trainer)["phase"] == "Trainer()"


def test_the_training_runs_ask_the_implementation_what_it_offers() -> None:
    """A contract function the module lacks is left out of the shared runs (the tests that need it say
    ``missing``): the suite's view knows what is missing, a plain module (in a child) is asked."""
    plain = types.ModuleType("plain")
    plain.configure_fp8_environment = lambda training_args: None  # type: ignore[attr-defined]
    assert offers(plain, "configure_fp8_environment") and not offers(plain, "verify_fp8_status")
    view = types.SimpleNamespace(missing=("verify_fp8_status",))
    assert offers(view, "configure_fp8_environment") and not offers(view, "verify_fp8_status")
