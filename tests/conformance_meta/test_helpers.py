"""Tests of the conformance suite's support code (``kit/``, ``children/probe.py``): SQNR, environment snapshots,
log capture, hiding a package, the stand-in Transformer Engine, the C9 rule, message checks and the probe."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import math
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from fp8ref_conformance.children import probe
from fp8ref_conformance.kit.contract import contract_accepts, fp8_arguments
from fp8ref_conformance.kit.env import env_diff, env_snapshot, restore_environ
from fp8ref_conformance.kit.logs import capture_logs
from fp8ref_conformance.kit.messages import mentions_package, mentions_word
from fp8ref_conformance.kit.numerics import sqnr_db
from fp8ref_conformance.kit.packages import hidden_packages
from fp8ref_conformance.kit.standin_te import STANDIN_TE_VERSION, is_standin_te, standin_te, write_standin_te

# --------------------------------------------------------------------------- SQNR


def test_sqnr_of_known_noise_is_exact() -> None:
    ref = torch.ones(100)
    assert sqnr_db(ref, ref * 1.1) == pytest.approx(20.0)  # noise is a tenth of the signal
    assert sqnr_db(ref, ref * 1.01) == pytest.approx(40.0)


def test_sqnr_edge_cases() -> None:
    ref = torch.randn(8, 8)
    assert sqnr_db(ref, ref.clone()) == math.inf
    assert sqnr_db(torch.zeros(4), torch.ones(4)) == -math.inf
    assert math.isnan(sqnr_db(ref, torch.full((8, 8), float("nan"))))
    with pytest.raises(ValueError, match="shapes differ"):
        sqnr_db(torch.ones(3), torch.ones(4))


def test_sqnr_is_computed_in_float64_whatever_the_inputs() -> None:
    ref = torch.randn(64, 64)
    out = ref + 1e-3 * torch.randn(64, 64)
    assert sqnr_db(ref.to(torch.bfloat16), out.to(torch.bfloat16)) == pytest.approx(
        sqnr_db(ref.to(torch.bfloat16).double(), out.to(torch.bfloat16).double())
    )


# --------------------------------------------------------------------------- environment


def test_env_snapshot_restores_added_changed_and_removed_variables() -> None:
    os.environ["FP8META_KEEP"] = "old"
    os.environ["FP8META_DROP"] = "x"
    try:
        before = dict(os.environ)
        with env_snapshot({"FP8META_NEW": "1"}, drop_prefixes=("FP8META_DROP",)) as start:
            assert start["FP8META_NEW"] == "1" and "FP8META_DROP" not in start
            os.environ["FP8META_KEEP"] = "changed"
            os.environ["FP8META_ADDED"] = "y"
            del os.environ["FP8META_NEW"]
        assert dict(os.environ) == before
    finally:
        os.environ.pop("FP8META_KEEP", None)
        os.environ.pop("FP8META_DROP", None)


def test_env_snapshot_restores_after_an_exception() -> None:
    before = dict(os.environ)
    with pytest.raises(RuntimeError), env_snapshot({"FP8META_X": "1"}):
        os.environ["FP8META_Y"] = "2"
        raise RuntimeError
    assert dict(os.environ) == before


def test_env_diff_and_restore_environ() -> None:
    changes = env_diff({"A": "1", "B": "2"}, {"B": "3", "C": "4"})
    assert [(c.name, c.before, c.after) for c in changes] == [("A", "1", None), ("B", "2", "3"), ("C", None, "4")]
    saved = dict(os.environ)
    os.environ["FP8META_Z"] = "1"
    restore_environ(saved)
    assert dict(os.environ) == saved


def test_make_args_can_omit_attributes() -> None:
    args = fp8_arguments(fp8=True, backend="te", omit=("fp8_enable_fsdp_float8_all_gather",))
    assert (args.fp8, args.fp8_backend) == (True, "te")
    assert not hasattr(args, "fp8_enable_fsdp_float8_all_gather")


# --------------------------------------------------------------------------- logs


def test_capture_logs_sees_loggers_that_do_not_propagate() -> None:
    quiet = logging.getLogger("fp8meta.quiet")
    quiet.propagate = False
    root = logging.getLogger()
    level = root.level
    try:
        with capture_logs() as logs:
            quiet.warning("loud %s", "enough")
            logging.getLogger("fp8meta.info").info("an info record")
        assert [r.getMessage() for r in logs.at_least(logging.WARNING)] == ["loud enough"]
        assert "an info record" in [r.getMessage() for r in logs.at_least(logging.INFO)]
        assert "WARNING fp8meta.quiet: loud enough" in logs.describe()
    finally:
        quiet.propagate = True
    assert root.level == level
    assert logging.Logger.callHandlers.__name__ == "callHandlers"


def test_capture_logs_respects_an_explicit_logger_level() -> None:
    strict = logging.getLogger("fp8meta.strict")
    strict.setLevel(logging.ERROR)
    try:
        with capture_logs() as logs:
            strict.warning("not logged at all")
        assert logs.records == []
    finally:
        strict.setLevel(logging.NOTSET)


# --------------------------------------------------------------------------- hiding packages


def _fake_package(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / name / "sub.py").write_text("VALUE = 2\n")


def test_hidden_packages_makes_a_package_unimportable_then_restores_it(tmp_path: Path) -> None:
    _fake_package(tmp_path, "fp8meta_pkg")
    sys.path.insert(0, str(tmp_path))
    try:
        pkg = importlib.import_module("fp8meta_pkg")
        sub = importlib.import_module("fp8meta_pkg.sub")
        with hidden_packages("fp8meta_pkg"):
            with pytest.raises(ModuleNotFoundError):
                importlib.import_module("fp8meta_pkg.sub")
            assert importlib.util.find_spec("fp8meta_pkg") is None
        assert importlib.import_module("fp8meta_pkg") is pkg
        assert sys.modules["fp8meta_pkg.sub"] is sub
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("fp8meta_pkg", "fp8meta_pkg.sub"):
            sys.modules.pop(name, None)


# --------------------------------------------------------------------------- stand-in TE


def test_standin_te_satisfies_accelerate_and_leaves_no_trace(tmp_path: Path) -> None:
    from accelerate.utils import TERecipeKwargs, is_transformer_engine_available

    available_before = is_transformer_engine_available()
    path_before = list(sys.path)
    with standin_te(tmp_path / "te"):
        import transformer_engine
        import transformer_engine.pytorch as te

        assert is_standin_te(transformer_engine) and is_standin_te(te)
        assert importlib.metadata.version("transformer-engine") == STANDIN_TE_VERSION
        assert is_transformer_engine_available()
        handler = TERecipeKwargs(fp8_format="HYBRID", amax_history_len=16, amax_compute_algo="max")
        assert handler.amax_history_len == 16
        assert not issubclass(te.Linear, nn.Linear), "TE's Linear is no nn.Linear; the stand-in's must not be either"
        with pytest.raises(AttributeError, match="stand-in"):
            _ = te.no_such_layer
    assert "transformer_engine" not in sys.modules or not is_standin_te(sys.modules["transformer_engine"])
    assert sys.path == path_before
    assert is_transformer_engine_available() == available_before


def test_write_standin_te_layout(tmp_path: Path) -> None:
    root = write_standin_te(tmp_path)
    assert (root / "transformer_engine" / "pytorch" / "__init__.py").is_file()
    metadata = (root / f"transformer_engine-{STANDIN_TE_VERSION}.dist-info" / "METADATA").read_text()
    assert "Name: transformer-engine" in metadata
    assert not is_standin_te(types.ModuleType("transformer_engine")) and not is_standin_te(None)


# --------------------------------------------------------------------------- C9 rule, messages


class _Sub(nn.Linear):
    pass


@pytest.mark.parametrize(
    ("module", "fqn", "expected"),
    [
        (nn.Linear(64, 64), "encoder.layer.3.output.dense", True),
        (nn.Linear(64, 64), "model.lm_head", False),
        (nn.Linear(64, 64), "output_proj", True),
        (nn.Linear(64, 40), "fc", False),
        (_Sub(32, 32), "", True),
        (nn.Embedding(64, 64), "fc", False),
    ],
)
def test_contract_accepts(module: nn.Module, fqn: str, expected: bool) -> None:
    assert contract_accepts(module, fqn) is expected


def test_mentions_word_and_package() -> None:
    assert mentions_word("valid: auto, torchao, te", "te")
    assert not mentions_word("transformer-engine only", "te")
    assert mentions_package("pip install transformer-engine[pytorch]", "transformer-engine")
    assert not mentions_package("No module named 'transformer_engine'", "transformer-engine")
    assert mentions_package("Install TorchAO", "torchao")


# --------------------------------------------------------------------------- probe


def test_probe_records_results_exceptions_and_environment_changes() -> None:
    def create(args: object) -> list[object]:
        raise ImportError("pip install torchao")

    def configure(args: object) -> None:
        os.environ["FP8META_SET"] = "1"

    impl = types.SimpleNamespace(create_fp8_kwargs=create, configure_fp8_environment=configure)
    before = dict(os.environ)
    failed = probe._run_call(impl, {"id": "a", "fn": "create_fp8_kwargs", "args": {"fp8": True}})  # type: ignore[arg-type]
    changed = probe._run_call(impl, {"id": "b", "fn": "configure_fp8_environment", "args": {}})  # type: ignore[arg-type]
    assert failed["ok"] is False and failed["is_import_error"] and "torchao" in failed["message"]
    assert changed["ok"] is True and changed["env"] == {"FP8META_SET": "1"}
    assert dict(os.environ) == before
