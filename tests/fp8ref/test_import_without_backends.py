"""fp8ref imports and explains itself where neither torchao nor Transformer Engine can be imported.

The check runs in a fresh interpreter with an import hook that makes both packages unimportable, as
in a virtual environment that lacks them (the README shows the same with a real one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torchao", "transformer_engine"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None
    sys.meta_path.insert(0, _Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_and_errors_without_backends() -> None:
    result = _run(
        """
        import json, types
        import fp8ref
        assert "torchao" not in sys.modules and "transformer_engine" not in sys.modules
        out = {}
        for backend in ("auto", "torchao", "te"):
            try:
                fp8ref.create_fp8_kwargs(types.SimpleNamespace(fp8=True, fp8_backend=backend))
                out[backend] = "no error"
            except ImportError as exc:
                out[backend] = f"{type(exc).__name__}: {exc}"
        out["disabled"] = fp8ref.create_fp8_kwargs(types.SimpleNamespace(fp8=False))
        print(json.dumps(out))
        """
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["disabled"] == []
    assert out["torchao"].startswith("FP8BackendUnavailableError") and "pip install torchao" in out["torchao"]
    assert "transformer-engine" in out["te"]
    assert "torchao" in out["auto"] and "transformer-engine" in out["auto"]


def test_doctor_says_neither_backend_is_installed_and_how_to_install_one() -> None:
    result = _run("from fp8ref.cli import main; sys.exit(main(['doctor']))")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[NO ] torchao" in result.stdout and "[NO ] te" in result.stdout
    assert "Neither FP8 backend is usable here" in result.stdout
    assert "pip install torchao" in result.stdout


def test_import_fp8ref_and_its_command_line_do_not_import_torch_until_a_helper_is_used() -> None:
    """``fp8ref check`` hands the suite to a child process: its own process need not pay torch's import (about 2 s
    of a core). Every public name still resolves, ``fp8ref.module_filter`` stays the function (not the submodule
    of that name), and ``from fp8ref import *`` gives all of ``__all__``."""
    done = _run(
        """
        import json, sys, fp8ref, fp8ref.cli
        before = "torch" in sys.modules
        missing = [name for name in fp8ref.__all__ if getattr(fp8ref, name, None) is None]
        import fp8ref.recipes
        namespace = {}
        exec("from fp8ref import *", namespace)
        is_function = callable(fp8ref.module_filter) and not isinstance(fp8ref.module_filter, type(sys))
        print(json.dumps({"torch_before": before, "torch_after": "torch" in sys.modules, "missing": missing,
                          "filter_is_function": is_function, "star": sorted(set(fp8ref.__all__) - set(namespace))}))
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "torch_before": False,
        "torch_after": True,
        "missing": [],
        "filter_is_function": True,
        "star": [],
    }, result
